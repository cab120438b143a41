# Sourced by the test and demo scripts: start and stop throwaway clusters.
# initdb refuses root, so clusters run as the postgres OS user when we are root.
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PATH="$PGBIN:$PATH"

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# cluster_start DIR PORT [extra postgresql.conf lines...]
cluster_start() {
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    {
        echo "listen_addresses = ''"
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "fsync = on"
        for line in "$@"; do echo "$line"; done
    } | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

cluster_stop() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
}
