#!/usr/bin/env bash
# bench/drain.sh -- end-to-end drain benchmark for chainstore's background worker.
#
# Starts ONE throwaway PostgreSQL 15 cluster (port 54361, unix socket in a private
# directory under /tmp, no TCP) with chainstore preloaded, and the test IPFS node
# (test/ipfs-node/server.mjs, Kubo RPC API) on 127.0.0.1:55361 with its repo in the
# same temporary directory. Then, in one run:
#   1  backlog   $N rows are committed into a tracked table while the worker serves
#                another database (so nothing is sealed or delivered); the cluster
#                is restarted with the worker serving the table's database, and the
#                time until every row has its CID written back is measured.
#                The worker's RSS is sampled every second.
#   2  stream    pgbench inserts rows at a fixed pace ($STREAM_RATE rows/s) for
#                $STREAM_DURATION s while the worker drains; end-to-end records/s
#                and the latency from capture to write-back are reported.
# Everything is on loopback, every wait is bounded.
#
# Usage:  bash bench/drain.sh            (see bench/README.md; knobs below)
# It is a benchmark, not a test: it reports numbers and never fails on them.
# Exit status is non-zero only if the harness itself breaks (cluster won't start...).

set -Eeuo pipefail
trap 'echo "drain.sh: line $LINENO: command failed: $BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------- knobs
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54361}
IPFS_PORT=${IPFS_PORT:-55361}
N=${N:-1000000}                        # phase 1: rows in the backlog
BATCH_SIZE=${BATCH_SIZE:-10000}        # chainstore.batch_size
LOAD_CHUNK=${LOAD_CHUNK:-50000}        # phase 1: rows per loading transaction
STREAM_DURATION=${STREAM_DURATION:-20} # phase 2: pgbench -T
STREAM_CLIENTS=${STREAM_CLIENTS:-2}    # phase 2: pgbench -c / -j
STREAM_RATE=${STREAM_RATE:-20000}      # phase 2: rows/s offered in total (0 = as fast as possible)
STREAM_ROWS_PER_TXN=${STREAM_ROWS_PER_TXN:-100}  # phase 2: rows per INSERT transaction
PHASES=${PHASES:-"backlog stream"}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-1800}   # s, bound on the phase 1 drain
SETTLE_TIMEOUT=${SETTLE_TIMEOUT:-600}  # s, bound on every other wait (verification, stream catch-up)
SHARED_BUFFERS=${SHARED_BUFFERS:-512MB}
AUTOVACUUM=${AUTOVACUUM:-on}
STATEMENT_TIMEOUT=${STATEMENT_TIMEOUT:-15min}
EXTRA_CONF=${EXTRA_CONF:-}             # extra postgresql.conf lines (newline separated)
PERF=${PERF:-0}                        # 1 = perf record the worker in each phase
EXPLAIN_SLOW_MS=${EXPLAIN_SLOW_MS:-0}  # >0 = auto_explain (ANALYZE) every statement slower than this, nested ones too
PERF_SECONDS=${PERF_SECONDS:-15}
PERF_AT=${PERF_AT:-3}                  # start perf this many seconds into the phase 1 drain
NODE=${NODE:-node}
KEEP=${KEEP:-0}                        # 1 = keep the cluster and IPFS repo after the run
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT_ROOT=${OUT_ROOT:-$BENCH_DIR/out}

die() { echo "drain.sh: $*" >&2; exit 2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$N"                   && (( N >= 1 && N <= 100000000 ))                     || die "N must be 1..100000000"
is_uint "$BATCH_SIZE"          && (( BATCH_SIZE >= 1 && BATCH_SIZE <= 1000000 ))     || die "BATCH_SIZE must be 1..1000000"
is_uint "$LOAD_CHUNK"          && (( LOAD_CHUNK >= 1 ))                               || die "LOAD_CHUNK must be a positive integer"
is_uint "$STREAM_DURATION"     && (( STREAM_DURATION >= 1 && STREAM_DURATION <= 3600 )) || die "STREAM_DURATION must be 1..3600"
is_uint "$STREAM_CLIENTS"      && (( STREAM_CLIENTS >= 1 && STREAM_CLIENTS <= 64 ))   || die "STREAM_CLIENTS must be 1..64"
is_uint "$STREAM_RATE"                                                                || die "STREAM_RATE must be a number (rows/s, 0 = unthrottled)"
is_uint "$STREAM_ROWS_PER_TXN" && (( STREAM_ROWS_PER_TXN >= 1 && STREAM_ROWS_PER_TXN <= 100000 )) || die "STREAM_ROWS_PER_TXN must be 1..100000"
is_uint "$DRAIN_TIMEOUT"       && (( DRAIN_TIMEOUT >= 10 ))                           || die "DRAIN_TIMEOUT must be >= 10 s"
is_uint "$SETTLE_TIMEOUT"      && (( SETTLE_TIMEOUT >= 10 ))                          || die "SETTLE_TIMEOUT must be >= 10 s"
is_uint "$PERF_AT"             || die "PERF_AT must be a number of seconds"
is_uint "$PERF_SECONDS"        && (( PERF_SECONDS >= 1 && PERF_SECONDS <= 600 ))      || die "PERF_SECONDS must be 1..600"
is_uint "$EXPLAIN_SLOW_MS"                                                            || die "EXPLAIN_SLOW_MS must be a number of ms (0 = off)"
is_uint "$PORT" && is_uint "$IPFS_PORT"                                               || die "PORT and IPFS_PORT must be numbers"
[[ $AUTOVACUUM =~ ^(on|off)$ ]]                                                       || die "AUTOVACUUM must be on or off"
[[ $STATEMENT_TIMEOUT =~ ^[0-9]+(ms|s|min|h)?$ ]]                                     || die "STATEMENT_TIMEOUT must look like 900s or 15min"
for p in $PHASES; do [[ $p =~ ^(backlog|stream)$ ]] || die "unknown phase '$p' (backlog stream)"; done
for b in initdb pg_ctl postgres psql pgbench createdb pg_config; do [ -x "$PGBIN/$b" ] || die "$PGBIN/$b not found"; done
command -v "$NODE" >/dev/null || die "node not found (NODE=$NODE)"
[ -r "$ROOT/test/ipfs-node/server.mjs" ] || die "$ROOT/test/ipfs-node/server.mjs not found"
[ -d "$ROOT/node_modules/ipfs-unixfs-importer" ] || die "node_modules missing: run 'npm ci' in $ROOT"
if [ "$PERF" = 1 ]; then command -v perf >/dev/null || die "PERF=1 but perf is not installed"; fi

# Never pick up connection settings from the caller's environment.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGSERVICE PGSERVICEFILE PGOPTIONS PGSSLMODE PGAPPNAME PGDATA

# initdb refuses to run as root: run every server-side binary as the postgres OS user.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user"
    RUN_AS=(runuser -u postgres --)
    DB_OWNER=postgres
else
    RUN_AS=()
    DB_OWNER=$(id -un)
fi
as_pg() { ${RUN_AS[@]+"${RUN_AS[@]}"} "$@"; }

STAMP=$(date +%Y%m%d-%H%M%S)
OUT_DIR=$OUT_ROOT/drain-$STAMP
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d /tmp/chainstore-drain.XXXXXX)
chmod 700 "$WORK"
if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; fi
PGDATA_DIR=$WORK/data
SOCK=$WORK            # unix socket directory
SERVER_LOG=$WORK/server.log
IPFS_REPO=$WORK/ipfs-repo
IPFS_URL=http://127.0.0.1:$IPFS_PORT
REPORT=$OUT_DIR/report.txt
SUMMARY=$OUT_DIR/summary.txt
STARTED=0
IPFS_PID=
SAMPLER_PID=
PGBENCH_PID=
PERF_PID=
CLK_TCK=$(getconf CLK_TCK)

stop_pid() {  # stop_pid PID SECONDS -- TERM, wait, then KILL; only the pid we started
    local pid=$1 secs=$2 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for (( i = 0; i < secs * 10; i++ )); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    stop_pid "$PERF_PID" 10; PERF_PID=
    stop_pid "$SAMPLER_PID" 5; SAMPLER_PID=
    stop_pid "$PGBENCH_PID" 10; PGBENCH_PID=
    if [ "$STARTED" = 1 ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -t 60 stop >/dev/null 2>&1 \
            || as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -t 30 stop >/dev/null 2>&1
        STARTED=0
    fi
    stop_pid "$IPFS_PID" 10; IPFS_PID=
    [ -f "$SERVER_LOG" ] && cp "$SERVER_LOG" "$OUT_DIR/server.log" 2>/dev/null
    [ -f "$WORK/ipfs.err" ] && cp "$WORK/ipfs.err" "$OUT_DIR/ipfs-node.log" 2>/dev/null
    if [ "$rc" != 0 ] && [ -f "$SERVER_LOG" ]; then
        echo "drain.sh: aborted (exit $rc); last server log lines:" >&2
        tail -n 15 "$SERVER_LOG" >&2
    fi
    if [ "$KEEP" = 1 ]; then
        echo "drain.sh: cluster and IPFS repo kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Everything printed to stdout also goes to the report file.
exec > >(tee "$REPORT") 2>&1

# psql as the cluster owner; stdin is the SQL. Prints unaligned tuples only.
psql_db() {  # psql_db DB [extra psql args...]
    local db=$1; shift
    as_pg "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -d "$db" "$@"
}
# One query in database postgres. If the server is restarting after a crash (a
# worker crash makes the postmaster reinitialize), wait for it (bounded) and retry once.
q() {
    local out
    if out=$(psql_db postgres <<<"$1" 2>"$WORK/q.err"); then
        [ -n "$out" ] && printf '%s\n' "$out"
        return 0
    fi
    local deadline=$(( $(date +%s) + 120 ))
    while grep -qE 'recovery mode|not yet accepting|starting up|shutting down|No such file|Connection refused|crash of another server process|server closed the connection' "$WORK/q.err" \
          && (( $(date +%s) < deadline )); do
        echo "   (server restarting after a crash: $(grep -E 'terminated by signal' "$SERVER_LOG" | tail -n 1 | cut -c 25-140); waiting)" >&2
        sleep 1
        if out=$(psql_db postgres <<<"$1" 2>"$WORK/q.err"); then
            [ -n "$out" ] && printf '%s\n' "$out"
            return 0
        fi
    done
    cat "$WORK/q.err" >&2
    return 1
}
crashes() { grep -c 'terminated by signal' "$SERVER_LOG" || true; }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.0f", a / b; else print "-"}'; }
mb() { awk -v k="$1" 'BEGIN {if (k == "" || k == "-") print "-"; else printf "%.1f", k / 1024}'; }

SO_AT_START=()   # md5 of chainstore.so at every (re)start: the build the postmaster preloaded
pg_start() {
    SO_AT_START+=("$(md5sum "$("$PGBIN/pg_config" --pkglibdir)/chainstore.so" 2>/dev/null | cut -c1-12)")
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$SERVER_LOG" -w -t 120 start >/dev/null \
        || { tail -n 30 "$SERVER_LOG" 2>/dev/null; die "could not start the cluster"; }
    STARTED=1
}
pg_stop() {
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -t 300 stop >/dev/null || die "could not stop the cluster"
    STARTED=0
}

# pid of the chainstore worker serving DB, waiting up to 30 s for it
worker_pid() {  # worker_pid DB
    local i pid
    for (( i = 0; i < 150; i++ )); do
        pid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'chainstore worker' AND datname = '$1' LIMIT 1;")
        [ -n "$pid" ] && { echo "$pid"; return 0; }
        sleep 0.2
    done
    return 1
}

# point the worker at database DB (a postmaster-level setting: restart)
serve() {  # serve DB
    [ "$(q "SHOW chainstore.databases;")" = "$1" ] && return 0
    q "ALTER SYSTEM SET chainstore.databases = '$1';" >/dev/null
    pg_stop
    pg_start
}

# the worker's palloc'd memory (all memory contexts), from pg_log_backend_memory_contexts()
# -> "<MB used by contexts> <MB RssAnon at that moment>"; "- -" if it did not answer in 10 s
palloc_total() {  # palloc_total PID
    local pid=$1 before i line
    before=$(grep -c "\[$pid\] LOG:  Grand total:" "$SERVER_LOG" || true)
    q "SELECT pg_log_backend_memory_contexts($pid);" >/dev/null || { echo "- -"; return 0; }
    for (( i = 0; i < 100; i++ )); do
        if [ "$(grep -c "\[$pid\] LOG:  Grand total:" "$SERVER_LOG" || true)" -gt "$before" ]; then
            line=$(grep "\[$pid\] LOG:  Grand total:" "$SERVER_LOG" | tail -n 1)
            # Grand total: B bytes in N blocks; F free (C chunks); U used
            awk -v l="$line" -v a="$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" 'BEGIN {
                n = split(l, w, " "); for (i = 1; i <= n; i++) if (w[i] == "total:") b = w[i + 1]
                printf "%.1f %s\n", b / 1048576, (a == "" ? "-" : sprintf("%.1f", a / 1024)) }'
            return 0
        fi
        sleep 0.1
    done
    echo "- -"
}

# CPU seconds the worker burns over SECONDS while nothing is left to do
idle_cpu() {  # idle_cpu PID SECONDS
    local a b
    a=$(cpu_ticks "$1"); sleep "$2"; b=$(cpu_ticks "$1")
    awk -v a="$a" -v b="$b" -v h="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / h}'
}

cpu_ticks() {  # cpu_ticks PID -> utime+stime in clock ticks (0 if gone)
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
sys_ticks() {  # "busy total" over all CPUs, from /proc/stat
    awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit}' /proc/stat
}

# Background sampler: every second, the worker's (pid read from $WORK/worker.pid,
# so a restarted worker is followed) and the IPFS node's memory.
# Columns: epoch worker_pid VmRSS RssAnon RssShmem VmHWM ipfs_VmRSS   (kB)
start_sampler() {  # start_sampler FILE
    local file=$1
    (
        trap 'exit 0' TERM
        while :; do
            wp=$(cat "$WORK/worker.pid" 2>/dev/null || echo 0)
            w=$(awk '/^(VmRSS|RssAnon|RssShmem|VmHWM):/ {v[$1] = $2} END {printf "%s %s %s %s", v["VmRSS:"], v["RssAnon:"], v["RssShmem:"], v["VmHWM:"]}' \
                "/proc/$wp/status" 2>/dev/null || true)
            [ -n "$w" ] || w="- - - -"
            i=$(awk '/^VmRSS:/ {print $2}' "/proc/$IPFS_PID/status" 2>/dev/null || echo -)
            echo "$(date +%s.%N) $wp $w $i"
            sleep 1
        done
    ) >"$file" &
    SAMPLER_PID=$!
}
stop_sampler() { stop_pid "$SAMPLER_PID" 5; SAMPLER_PID=; }

# rss_stats FILE FROM TO -> "first min max last" of VmRSS and RssAnon (kB) and samples,
# over the samples with FROM <= epoch <= TO
rss_stats() {
    awk -v a="$2" -v b="$3" '
        $1 >= a && $1 <= b && $3 != "-" {
            n++; if (n == 1) {fr = $3; fa = $4; mnr = $3; mxr = $3; mna = $4; mxa = $4}
            if ($3 < mnr) mnr = $3; if ($3 > mxr) mxr = $3
            if ($4 < mna) mna = $4; if ($4 > mxa) mxa = $4
            lr = $3; la = $4; hwm = $6; im = ($7 != "-" && $7 > im) ? $7 : im }
        END {if (n) print fr, mnr, mxr, lr, fa, mna, mxa, la, n, hwm, im; else print "- - - - - - - - 0 - -"}' "$1"
}
# a compact series of ~12 VmRSS / RssAnon samples, evenly spaced, so a trend is visible
rss_series() {  # rss_series FILE FROM TO
    awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b && $3 != "-" {n++; t[n] = $1 - a; r[n] = $3; an[n] = $4}
        END {if (!n) exit; step = n / 12; if (step < 1) step = 1
             for (x = 1; x <= n; x += step) {i = int(x); printf "    t=%6.1fs  VmRSS %7.1f MB  RssAnon %6.1f MB\n", t[i], r[i] / 1024, an[i] / 1024}
             printf "    t=%6.1fs  VmRSS %7.1f MB  RssAnon %6.1f MB  (last)\n", t[n], r[n] / 1024, an[n] / 1024}' "$1"
}

# PERF=1: sample the worker's CPU for PERF_SECONDS (flat profile; Debian's
# postgres has no frame pointers, so call graphs are not reliable)
perf_start() {  # perf_start PHASE PID
    perf record -F 499 -p "$2" -o "$OUT_DIR/perf-worker-$1.data" -- sleep "$PERF_SECONDS" \
        >"$OUT_DIR/perf-record-$1.log" 2>&1 &
    PERF_PID=$!
    echo "   (perf record -p $2 for ${PERF_SECONDS}s)"
}
perf_report() {  # perf_report PHASE
    [ -n "$PERF_PID" ] && { wait "$PERF_PID" 2>/dev/null || true; PERF_PID=; }
    [ "$PERF" = 1 ] && [ -s "$OUT_DIR/perf-worker-$1.data" ] || return 0
    perf report -i "$OUT_DIR/perf-worker-$1.data" --stdio --no-children --sort dso,symbol 2>/dev/null \
        | grep -E '^ +[0-9]' | head -n 60 >"$OUT_DIR/perf-worker-$1.txt" || true
    echo "   perf, worker during $1 (top symbols; perf-worker-$1.txt has 60):"
    head -n 20 "$OUT_DIR/perf-worker-$1.txt" | sed 's/^/     /'
}

# ---------------------------------------------------------------- IPFS node
echo "== chainstore drain benchmark  ($(date -u '+%Y-%m-%d %H:%M:%S UTC'))"
mkdir -p "$IPFS_REPO"
"$NODE" "$ROOT/test/ipfs-node/server.mjs" --port "$IPFS_PORT" --repo "$IPFS_REPO" --host 127.0.0.1 \
    >"$WORK/ipfs.out" 2>"$WORK/ipfs.err" </dev/null &
IPFS_PID=$!
for (( i = 0; i < 300; i++ )); do
    grep -q '^ready' "$WORK/ipfs.out" 2>/dev/null && break
    kill -0 "$IPFS_PID" 2>/dev/null || { cat "$WORK/ipfs.err"; die "the IPFS node exited"; }
    sleep 0.1
done
grep -q "^ready $IPFS_PORT" "$WORK/ipfs.out" || { cat "$WORK/ipfs.err"; die "the IPFS node did not start on port $IPFS_PORT within 30 s"; }

# ---------------------------------------------------------------- cluster
as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U "$DB_OWNER" -E UTF8 --no-locale --auth=trust \
    >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; die "initdb failed"; }
{
    cat <<CONF
# --- bench/drain.sh settings
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PORT
max_connections = 30
shared_buffers = $SHARED_BUFFERS
fsync = on
full_page_writes = on
synchronous_commit = off
wal_level = replica
max_wal_size = 8GB
min_wal_size = 1GB
checkpoint_timeout = 30min
autovacuum = $AUTOVACUUM
jit = off
track_commit_timestamp = on          # exact commit time of every write-back
statement_timeout = '$STATEMENT_TIMEOUT'
lock_timeout = '5min'
lc_messages = 'C'
log_min_messages = log
log_checkpoints = on
log_autovacuum_min_duration = 0
shared_preload_libraries = 'chainstore'
chainstore.databases = 'postgres'    # changed with ALTER SYSTEM below
chainstore.batch_size = $BATCH_SIZE
chainstore.max_batch_delay = 200ms
chainstore.naptime = 200ms
CONF
    if [ "$EXPLAIN_SLOW_MS" != 0 ]; then
        cat <<CONF
# --- EXPLAIN_SLOW_MS: diagnosis only, auto_explain's timing slows the worker down
shared_preload_libraries = 'chainstore,auto_explain'
auto_explain.log_min_duration = '${EXPLAIN_SLOW_MS}ms'
auto_explain.log_nested_statements = on
auto_explain.log_analyze = on
auto_explain.log_buffers = on
CONF
    fi
    if [ -n "$EXTRA_CONF" ]; then echo "# --- EXTRA_CONF"; echo "$EXTRA_CONF"; fi
} | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null

pg_start
# The idle database: the worker serves it while the backlog is loaded into
# 'postgres', and finds no chainstore there, so it seals and delivers nothing.
as_pg "$PGBIN/createdb" -h "$SOCK" -p "$PORT" cs_idle
q "ALTER SYSTEM SET chainstore.databases = 'cs_idle';" >/dev/null
pg_stop
pg_start
worker_pid cs_idle >/dev/null || die "no chainstore worker for database cs_idle"

PG_VERSION=$(q "SELECT version();")
CS_VERSION=$(q "SELECT coalesce(max(default_version), '') FROM pg_available_extensions WHERE name = 'chainstore';")
[ -n "$CS_VERSION" ] || die "chainstore is not installed in this PostgreSQL (no chainstore.control)"
CS_SO=$("$PGBIN/pg_config" --pkglibdir)/chainstore.so
CS_SO_INFO=$( [ -f "$CS_SO" ] && echo "$CS_SO, $(stat -c %s "$CS_SO") bytes, modified $(date -u -r "$CS_SO" '+%F %T UTC'), md5 $(md5sum "$CS_SO" | cut -c1-12)" || echo "no $CS_SO")
NPROC=$(nproc)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "-- machine"
echo "nproc:        $NPROC"
echo "cpu:          $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo '?')"
echo "memory:       $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || echo '?')"
echo "kernel:       $(uname -sr)"
echo "load average: $LOAD_START  (at start; other work on the machine skews the numbers)"
echo "data dir fs:  $(df -PT "$WORK" | awk 'NR==2 {print $2" on "$1}')"
echo "postgres:     $PG_VERSION"
echo "chainstore:   $CS_VERSION ($CS_SO_INFO)"
echo "git:          $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src sql 2>/dev/null || echo ' (src/ or sql/ modified)')"
echo "ipfs node:    test/ipfs-node/server.mjs on $IPFS_URL, $("$NODE" --version), repo on $(df -PT "$IPFS_REPO" | awk 'NR==2 {print $2}')"
echo
echo "-- settings"
q "SELECT rpad(name, 34) || current_setting(name)
     FROM pg_settings
    WHERE name IN ('shared_buffers','synchronous_commit','fsync','max_wal_size','checkpoint_timeout',
                   'autovacuum','jit','track_commit_timestamp','shared_preload_libraries','work_mem')
       OR name LIKE 'chainstore.%'
    ORDER BY name;" | sed 's/^/  /'
if [ -n "$EXTRA_CONF" ]; then echo "  EXTRA_CONF:"; echo "$EXTRA_CONF" | sed 's/^/    /'; fi
echo "  backlog N=$N (loaded in transactions of $LOAD_CHUNK rows); stream: pgbench -c $STREAM_CLIENTS -j $STREAM_CLIENTS -T $STREAM_DURATION,"
echo "  $STREAM_ROWS_PER_TXN rows per transaction, offered rate $( [ "$STREAM_RATE" = 0 ] && echo 'unthrottled' || echo "$STREAM_RATE rows/s")"

# ---------------------------------------------------------------- schema
table_ddl() {  # table_ddl NAME
    cat <<SQL
CREATE TABLE public.$1 (
    id          bigint PRIMARY KEY,
    buyer       text NOT NULL,
    listing_id  int NOT NULL,
    amount      numeric(12,2) NOT NULL,
    currency    text NOT NULL,
    created_at  timestamptz NOT NULL,
    note        text,
    cid         text                 -- written back by the worker, never hashed
);
SELECT chainstore.track('public.$1', writeback => '{"ipfs_cid": "cid"}');
SQL
}
psql_db postgres >/dev/null <<SQL
CREATE EXTENSION chainstore;
SELECT chainstore.add_sink('ipfs', 'ipfs', ARRAY['$IPFS_URL']);
$(table_ddl backlog)
$(table_ddl stream)
CREATE SEQUENCE public.stream_id_seq;
SQL

declare -A R=()   # results

# ================================================================ phase 1: backlog
phase_backlog() {
    local t_load0 t_load1 loaded=0 chunk wpid wstart pending nb t_end_poll t_end_commit line
    local poll ok=0 written sealed bad i deadline last_print=0 last_written=0 last_t t_poll
    local c0w c0i c1w c1i s0 s1 perf_started=0

    echo
    echo "-- phase 1: backlog of $N captured, unsealed rows, then drain"
    echo "   loading (worker serves database cs_idle, so nothing is sealed yet) ..."
    t_load0=$(now)
    while (( loaded < N )); do
        chunk=$(( N - loaded < LOAD_CHUNK ? N - loaded : LOAD_CHUNK ))
        q "INSERT INTO public.backlog (id, buyer, listing_id, amount, currency, created_at, note)
           SELECT g, 'buyer' || (g % 5000), (g * 7919) % 100000, ((g * 37) % 1000000) / 100.0,
                  CASE WHEN g % 3 = 0 THEN 'USD' ELSE 'EUR' END,
                  timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
                  CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || md5(g::text) END
             FROM generate_series($(( loaded + 1 ))::bigint, $(( loaded + chunk ))::bigint) AS g;" >/dev/null
        loaded=$(( loaded + chunk ))
    done
    t_load1=$(now)
    R[load_s]=$(fsub "$t_load1" "$t_load0")
    pending=$(q "SELECT count(*) FROM chainstore.outbox;")
    nb=$(q "SELECT count(*) FROM chainstore.batches;")
    printf '   loaded %d rows in %.1f s (%s rows/s, capture included); outbox %s, batches %s\n' \
        "$N" "${R[load_s]}" "$(fdiv "$N" "${R[load_s]}")" "$pending" "$nb"
    [ "$pending" = "$N" ] && [ "$nb" = 0 ] || die "expected $N pending versions and no batch before the drain, got $pending and $nb"
    # what a table that has been sitting would have: statistics, a vacuumed heap
    q "VACUUM ANALYZE; CHECKPOINT;" >/dev/null

    echo "   restarting with chainstore.databases = 'postgres' ..."
    serve postgres
    wpid=$(worker_pid postgres) || die "no chainstore worker for database postgres after the restart"
    echo "$wpid" >"$WORK/worker.pid"
    start_sampler "$OUT_DIR/rss-backlog.txt"
    # t0: when the worker process started (server clock = this machine's clock)
    wstart=$(q "SELECT extract(epoch FROM backend_start) FROM pg_stat_activity WHERE pid = $wpid;")
    c0w=$(cpu_ticks "$wpid"); c0i=$(cpu_ticks "$IPFS_PID"); s0=$(sys_ticks)
    echo "   worker pid $wpid started at t0; polling every 0.5 s (bounded by DRAIN_TIMEOUT=${DRAIN_TIMEOUT}s)"
    printf '   %8s %10s %10s %10s %10s %9s %9s\n' elapsed sealed delivered "written" "rec/s" "VmRSS MB" "RssAnon"
    echo "epoch elapsed sealed_records delivered_records written_back bad_deliveries worker_pid" >"$OUT_DIR/progress-backlog.txt"

    # Every 0.5 s a cheap poll of chainstore's own tables: records sealed, records
    # in batches the sink has accepted. Rows written back are counted from the
    # table itself (cid IS NOT NULL), which scans it, so only every 5 s while
    # deliveries are under way (about 0.1 s of CPU for 1M rows), then every 0.5 s
    # once everything is delivered. That count decides the end, whether the
    # write-back runs in the delivery's transaction or after it.
    poll="SELECT coalesce((SELECT sum(record_count) FROM chainstore.batches), 0),
                 coalesce(sum(b.record_count) FILTER (WHERE d.state IN ('delivered', 'verified')), 0),
                 count(*) FILTER (WHERE d.state IN ('dead', 'mismatch')),
                 coalesce((SELECT pid FROM pg_stat_activity WHERE backend_type = 'chainstore worker' AND datname = 'postgres' LIMIT 1), 0),
                 extract(epoch FROM clock_timestamp())
            FROM chainstore.deliveries d JOIN chainstore.batches b USING (batch_id);"
    deadline=$(( $(date +%s) + DRAIN_TIMEOUT ))
    last_t=$wstart
    written=0
    while (( $(date +%s) < deadline )); do
        line=$(q "$poll" | tr '|' ' ')
        read -r sealed delivered bad i t_poll <<<"$line"
        if [ "$i" != 0 ] && [ "$i" != "$wpid" ]; then
            echo "   !! the worker restarted: pid $wpid -> $i (see server.log)"
            R[notes]="${R[notes]:-}worker restarted during the drain (pid $wpid -> $i); "
            wpid=$i; echo "$wpid" >"$WORK/worker.pid"
        fi
        if [ "$PERF" = 1 ] && [ "$perf_started" = 0 ] && awk -v e="$(fsub "$t_poll" "$wstart")" -v a="$PERF_AT" 'BEGIN {exit !(e >= a)}'; then
            perf_start backlog "$wpid"; perf_started=1
        fi
        if [ "$delivered" -ge "$N" ] || awk -v t="$t_poll" -v l="$last_print" 'BEGIN {exit !(t - l >= 5)}'; then
            written=$(q "SELECT count(*) FROM public.backlog WHERE cid IS NOT NULL;")
        fi
        echo "$t_poll $(fsub "$t_poll" "$wstart") $sealed $delivered $written $bad $i" >>"$OUT_DIR/progress-backlog.txt"
        if awk -v t="$t_poll" -v l="$last_print" 'BEGIN {exit !(t - l >= 5)}' || [ "$written" -ge "$N" ]; then
            printf '   %7.1fs %10s %10s %10s %10s %9s %9s\n' "$(fsub "$t_poll" "$wstart")" "$sealed" "$delivered" "$written" \
                "$(fdiv "$(( written - last_written ))" "$(fsub "$t_poll" "$last_t")")" \
                "$(mb "$(awk '/^VmRSS:/ {print $2}' "/proc/$wpid/status" 2>/dev/null)")" \
                "$(mb "$(awk '/^RssAnon:/ {print $2}' "/proc/$wpid/status" 2>/dev/null)")"
            last_print=$t_poll; last_written=$written; last_t=$t_poll
        fi
        if [ "$written" -ge "$N" ]; then ok=1; break; fi
        if (( $(crashes) > 3 )); then
            echo "   !! the worker crashed $(crashes) times; giving up (see server.log)"
            break
        fi
        if [ "$bad" != 0 ]; then
            # a dead or mismatched delivery never writes back; stop once nothing else moves
            if [ "$(q "SELECT count(*) FROM chainstore.outbox;")" = 0 ] && \
               [ "$(q "SELECT count(*) FROM chainstore.deliveries WHERE state IN ('pending', 'in_flight');")" = 0 ]; then
                echo "   !! $bad deliveries dead-lettered or mismatched; the drain cannot complete"
                break
            fi
        fi
        sleep 0.5
    done
    t_end_poll=$(now)
    c1w=$(cpu_ticks "$wpid"); c1i=$(cpu_ticks "$IPFS_PID"); s1=$(sys_ticks)
    stop_sampler

    local nulls
    nulls=$(q "SELECT count(*) FROM public.backlog WHERE cid IS NULL;")
    R[backlog_nulls]=$nulls
    if [ "$nulls" != 0 ]; then
        ok=0
        echo "   !! $nulls rows still have no CID"
        R[notes]="${R[notes]:-}backlog: $nulls rows without CID at the end; "
    fi
    # exact end: commit time of the last write-back transaction
    t_end_commit=$(q "SELECT extract(epoch FROM max(pg_xact_commit_timestamp(xmin))) FROM public.backlog WHERE cid IS NOT NULL;")
    R[backlog_ok]=$ok
    R[backlog_records]=$N
    R[backlog_s]=$(fsub "$t_end_commit" "$wstart")
    R[backlog_s_poll]=$(fsub "$t_end_poll" "$wstart")
    R[backlog_rate]=$( [ "$ok" = 1 ] && fdiv "$N" "${R[backlog_s]}" || echo "incomplete")
    read -r "R[b_rss_first]" "R[b_rss_min]" "R[b_rss_max]" "R[b_rss_last]" "R[b_anon_first]" "R[b_anon_min]" "R[b_anon_max]" "R[b_anon_last]" \
        "R[b_samples]" "R[b_hwm]" "R[b_ipfs_max]" <<<"$(rss_stats "$OUT_DIR/rss-backlog.txt" "$wstart" "$t_end_poll")"
    R[b_cpu_worker]=$(awk -v a="$c0w" -v b="$c1w" -v h="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / h}')
    R[b_cpu_ipfs]=$(awk -v a="$c0i" -v b="$c1i" -v h="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / h}')
    R[b_busy]=$(awk -v a="$s0" -v b="$s1" 'BEGIN {split(a, x, " "); split(b, y, " "); if (y[2] > x[2]) printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]); else print "-"}')
    R[b_batches]=$(q "SELECT count(*) || ' batches, ' || coalesce(round(avg(length(d.payload)) / 1048576.0, 2), 0) || ' MiB manifest on average' FROM chainstore.deliveries d;")

    echo
    printf '   drain: %s records in %.2f s (t0 = worker start, end = commit of the last write-back) = %s records/s\n' \
        "$N" "${R[backlog_s]}" "${R[backlog_rate]}"
    printf '          (the poll saw every CID after %.2f s; %s)\n' "${R[backlog_s_poll]}" "${R[b_batches]}"
    echo "   worker RSS over the drain (${R[b_samples]} samples, 1/s):"
    echo "          VmRSS   first $(mb "${R[b_rss_first]}") MB, min $(mb "${R[b_rss_min]}"), max $(mb "${R[b_rss_max]}"), last $(mb "${R[b_rss_last]}") MB  (VmHWM $(mb "${R[b_hwm]}") MB)"
    echo "          RssAnon first $(mb "${R[b_anon_first]}") MB, min $(mb "${R[b_anon_min]}"), max $(mb "${R[b_anon_max]}"), last $(mb "${R[b_anon_last]}") MB"
    echo "          (VmRSS includes the shared buffers the worker has touched; RssAnon is its private memory)"
    rss_series "$OUT_DIR/rss-backlog.txt" "$wstart" "$t_end_poll"
    echo "   CPU during the drain: worker ${R[b_cpu_worker]} s, IPFS node ${R[b_cpu_ipfs]} s, whole machine ${R[b_busy]}% busy of $NPROC CPUs"
    echo "   IPFS node RSS max $(mb "${R[b_ipfs_max]}") MB"

    perf_report backlog

    # what autovacuum can see of the worker's writes: the worker deleted N outbox rows,
    # inserted the proofs and updated N rows of the table (write-back)
    R[b_stats]=$(q "SELECT 'outbox n_tup_del ' || (SELECT n_tup_del FROM pg_stat_user_tables WHERE relid = 'chainstore.outbox'::regclass)
                        || ', proofs n_tup_ins ' || (SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'chainstore.proofs'::regclass)
                        || ', backlog n_tup_upd ' || (SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'public.backlog'::regclass)
                        || ', n_dead_tup ' || (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'public.backlog'::regclass);")
    R[b_autovac]=$(grep -cE 'automatic vacuum of table "postgres\.(chainstore\.outbox|public\.backlog)"' "$SERVER_LOG" || true)
    echo "   cumulative statistics after the drain (expected $N each): ${R[b_stats]};"
    echo "   autovacuum runs on chainstore.outbox / public.backlog so far: ${R[b_autovac]}"
    read -r "R[b_palloc]" "R[b_palloc_anon]" <<<"$(palloc_total "$wpid")"
    echo "   worker memory contexts right after the drain: ${R[b_palloc]} MB allocated (RssAnon then ${R[b_palloc_anon]} MB)"

    # the immediate verification (read back by CID) of every delivery follows the write-backs
    local vdeadline=$(( $(date +%s) + SETTLE_TIMEOUT )) left
    while (( $(date +%s) < vdeadline )); do
        left=$(q "SELECT count(*) FROM chainstore.deliveries WHERE state IN ('pending', 'in_flight', 'delivered');")
        [ "$left" = 0 ] && break
        sleep 0.5
    done
    R[b_verified_s]=$(fsub "$(q "SELECT extract(epoch FROM max(verified_at)) FROM chainstore.deliveries;")" "$wstart")
    echo "   every delivery verified (read back by CID) $(printf '%.1f' "${R[b_verified_s]}") s after t0;" \
         "states: $(q "SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, count(*) n FROM chainstore.deliveries GROUP BY 1 ORDER BY 1) s;")"
    sleep 2
    read -r "R[b_idle_palloc]" "R[b_idle_anon]" <<<"$(palloc_total "$wpid")"
    R[b_idle_cpu]=$(idle_cpu "$wpid" 10)
    echo "   worker idle afterwards: memory contexts ${R[b_idle_palloc]} MB, RssAnon ${R[b_idle_anon]} MB," \
         "CPU ${R[b_idle_cpu]} s in 10 s with nothing to do"
}

# ================================================================ phase 2: stream
phase_stream() {
    local script log rc rate_txn=0 wpid t_s0 t_s1 rows c0w c1w c0i c1i s0 s1 left deadline line
    echo
    echo "-- phase 2: steady stream, pgbench -c $STREAM_CLIENTS -T $STREAM_DURATION, $STREAM_ROWS_PER_TXN rows per transaction," \
         "$( [ "$STREAM_RATE" = 0 ] && echo 'unthrottled' || echo "offered $STREAM_RATE rows/s")"
    serve postgres
    # start from a quiet worker: nothing pending from phase 1
    q "CHECKPOINT;" >/dev/null
    wpid=$(worker_pid postgres) || die "no chainstore worker for database postgres"
    echo "$wpid" >"$WORK/worker.pid"
    script=$WORK/stream.sql
    cat >"$script" <<SQL
INSERT INTO public.stream (id, buyer, listing_id, amount, currency, created_at, note)
SELECT nextval('public.stream_id_seq'), 'buyer' || (random() * 5000)::int, (random() * 100000)::int,
       round((random() * 100000)::numeric, 2), 'EUR', now(), 'stream'
  FROM generate_series(1, $STREAM_ROWS_PER_TXN);
SQL
    chmod 644 "$script"
    if [ "$STREAM_RATE" != 0 ]; then
        rate_txn=$(awk -v r="$STREAM_RATE" -v k="$STREAM_ROWS_PER_TXN" 'BEGIN {printf "%.3f", r / k}')
    fi
    log=$OUT_DIR/pgbench-stream.log
    start_sampler "$OUT_DIR/rss-stream.txt"
    c0w=$(cpu_ticks "$wpid"); c0i=$(cpu_ticks "$IPFS_PID"); s0=$(sys_ticks)
    t_s0=$(now)
    rc=0
    local rate_args=()
    [ "$STREAM_RATE" != 0 ] && rate_args=(-R "$rate_txn")
    as_pg "$PGBIN/pgbench" -n -h "$SOCK" -p "$PORT" -c "$STREAM_CLIENTS" -j "$STREAM_CLIENTS" -T "$STREAM_DURATION" \
        -M prepared ${rate_args[@]+"${rate_args[@]}"} -f "$script" postgres >"$log" 2>&1 &
    PGBENCH_PID=$!
    if [ "$PERF" = 1 ]; then sleep 3; perf_start stream "$wpid"; fi
    wait "$PGBENCH_PID" || rc=$?
    PGBENCH_PID=
    t_s1=$(now)
    if [ "$rc" != 0 ]; then
        echo "   !! pgbench exit $rc:"; grep -m 5 -E 'ERROR|FATAL|abort' "$log" | sed 's/^/      /'
        R[notes]="${R[notes]:-}stream: pgbench exit $rc; "
    fi
    rows=$(q "SELECT count(*) FROM public.stream;")
    printf '   inserted %s rows in %.1f s (%s rows/s); pgbench: %s\n' "$rows" "$(fsub "$t_s1" "$t_s0")" \
        "$(fdiv "$rows" "$(fsub "$t_s1" "$t_s0")")" \
        "$(awk '/^tps = / {t = $3} /^rate limit schedule lag/ {sub(/^rate limit schedule lag: /, ""); l = $0}
                END {printf "%.1f tps", t; if (l != "") printf ", schedule lag %s", l}' "$log")"
    # wait until the worker has caught up (bounded): nothing in the outbox, no delivery before write-back
    deadline=$(( $(date +%s) + SETTLE_TIMEOUT ))
    while (( $(date +%s) < deadline )); do
        left=$(q "SELECT (SELECT count(*) FROM chainstore.outbox) + (SELECT count(*) FROM chainstore.deliveries WHERE state IN ('pending', 'in_flight'));")
        [ "$left" = 0 ] && [ "$(q "SELECT count(*) FROM public.stream WHERE cid IS NULL;")" = 0 ] && break
        sleep 0.5
    done
    c1w=$(cpu_ticks "$wpid"); c1i=$(cpu_ticks "$IPFS_PID"); s1=$(sys_ticks)
    stop_sampler
    perf_report stream
    # idle = every delivery verified, nothing on the wire (bounded)
    deadline=$(( $(date +%s) + SETTLE_TIMEOUT ))
    while (( $(date +%s) < deadline )); do
        [ "$(q "SELECT count(*) FROM chainstore.deliveries WHERE state IN ('pending', 'in_flight', 'delivered');")" = 0 ] && break
        sleep 0.5
    done
    sleep 2
    read -r "R[s_idle_palloc]" "R[s_idle_anon]" <<<"$(palloc_total "$wpid")"
    R[s_idle_cpu]=$(idle_cpu "$wpid" 10)
    R[stream_nulls]=$(q "SELECT count(*) FROM public.stream WHERE cid IS NULL;")
    R[stream_records]=$rows
    # span: first capture -> commit of the last write-back; latencies per version:
    #   wb  = commit time of the write-back of its row (track_commit_timestamp) - captured_at
    #   dlv = chainstore.deliveries.delivered_at - captured_at (delivered_at is the start of the
    #         transaction that records the delivery and runs the write-back)
    line=$(q "WITH wb AS (SELECT cid, max(pg_xact_commit_timestamp(xmin)) AS t FROM public.stream WHERE cid IS NOT NULL GROUP BY cid),
                   v AS (SELECT extract(epoch FROM v.captured_at) AS cap,
                                extract(epoch FROM wb.t) AS wbt,
                                extract(epoch FROM wb.t - v.captured_at) AS lat,
                                extract(epoch FROM d.delivered_at - v.captured_at) AS dlat
                           FROM chainstore.versions v
                           JOIN chainstore.tracked tr ON tr.table_id = v.table_id AND tr.relid = 'public.stream'::regclass
                           JOIN chainstore.proofs p USING (version_id)
                           JOIN chainstore.deliveries d USING (batch_id)
                           JOIN wb ON wb.cid = d.attestation->>'ipfs_cid')
              SELECT count(*), min(cap), max(cap), max(wbt),
                     round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lat)::numeric, 3),
                     round(percentile_cont(0.95) WITHIN GROUP (ORDER BY lat)::numeric, 3),
                     round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lat)::numeric, 3),
                     round(max(lat)::numeric, 3),
                     round(percentile_cont(0.5) WITHIN GROUP (ORDER BY dlat)::numeric, 3),
                     round(percentile_cont(0.95) WITHIN GROUP (ORDER BY dlat)::numeric, 3)
                FROM v;" | tr '|' ' ')
    read -r "R[s_n]" "R[s_cap0]" "R[s_cap1]" "R[s_wb1]" "R[s_p50]" "R[s_p95]" "R[s_p99]" "R[s_max]" "R[s_dp50]" "R[s_dp95]" <<<"$line"
    R[stream_ok]=$( [ "${R[stream_nulls]}" = 0 ] && [ "${R[s_n]}" = "$rows" ] && echo 1 || echo 0)
    R[stream_s]=$(fsub "${R[s_wb1]:-0}" "${R[s_cap0]:-0}")
    R[stream_rate]=$( [ "${R[stream_ok]}" = 1 ] && fdiv "$rows" "${R[stream_s]}" || echo "incomplete")
    R[stream_insert_rate]=$(fdiv "$rows" "$(fsub "${R[s_cap1]}" "${R[s_cap0]}")")
    R[stream_catchup]=$(fsub "${R[s_wb1]}" "${R[s_cap1]}")
    read -r "R[s_rss_first]" "R[s_rss_min]" "R[s_rss_max]" "R[s_rss_last]" "R[s_anon_first]" "R[s_anon_min]" "R[s_anon_max]" "R[s_anon_last]" \
        "R[s_samples]" "R[s_hwm]" "R[s_ipfs_max]" <<<"$(rss_stats "$OUT_DIR/rss-stream.txt" "$t_s0" "$(now)")"
    R[s_cpu_worker]=$(awk -v a="$c0w" -v b="$c1w" -v h="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / h}')
    R[s_cpu_ipfs]=$(awk -v a="$c0i" -v b="$c1i" -v h="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / h}')
    R[s_busy]=$(awk -v a="$s0" -v b="$s1" 'BEGIN {split(a, x, " "); split(b, y, " "); if (y[2] > x[2]) printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]); else print "-"}')
    if [ "${R[stream_nulls]}" != 0 ]; then
        echo "   !! ${R[stream_nulls]} stream rows still have no CID after ${SETTLE_TIMEOUT}s"
        R[notes]="${R[notes]:-}stream: ${R[stream_nulls]} rows without CID at the end; "
    fi
    printf '   end to end: %s records from first capture to last write-back in %.2f s = %s records/s\n' \
        "$rows" "${R[stream_s]}" "${R[stream_rate]}"
    printf '   insert rate seen by capture %s rows/s; last write-back %.2f s after the last capture\n' \
        "${R[stream_insert_rate]}" "${R[stream_catchup]}"
    echo "   latency capture -> write-back commit: p50 ${R[s_p50]} s, p95 ${R[s_p95]} s, p99 ${R[s_p99]} s, max ${R[s_max]} s"
    echo "   latency capture -> delivered_at:      p50 ${R[s_dp50]} s, p95 ${R[s_dp95]} s"
    echo "   worker VmRSS first $(mb "${R[s_rss_first]}") / max $(mb "${R[s_rss_max]}") / last $(mb "${R[s_rss_last]}") MB," \
         "RssAnon first $(mb "${R[s_anon_first]}") / max $(mb "${R[s_anon_max]}") / last $(mb "${R[s_anon_last]}") MB"
    echo "   worker idle afterwards (all verified): memory contexts ${R[s_idle_palloc]} MB, RssAnon ${R[s_idle_anon]} MB," \
         "CPU ${R[s_idle_cpu]} s in 10 s with nothing to do"
    echo "   CPU: worker ${R[s_cpu_worker]} s, IPFS node ${R[s_cpu_ipfs]} s, machine ${R[s_busy]}% busy of $NPROC CPUs"
    echo "   batches in the stream: $(q "SELECT count(DISTINCT p.batch_id) || ' (mean ' || round(count(*)::numeric / greatest(count(DISTINCT p.batch_id), 1)) || ' records)'
                                      FROM chainstore.proofs p JOIN chainstore.versions v USING (version_id)
                                      JOIN chainstore.tracked tr ON tr.table_id = v.table_id AND tr.relid = 'public.stream'::regclass;")"
}

for p in $PHASES; do "phase_$p"; done

# EXPLAIN_SLOW_MS: where the slow statements' time went (from auto_explain in the server log)
if [ "$EXPLAIN_SLOW_MS" != 0 ]; then
    echo
    echo "-- statements slower than ${EXPLAIN_SLOW_MS} ms (auto_explain; a statement's time includes the nested"
    echo "   statements it ran, which are listed too; plans in server.log)"
    printf '   %6s %10s %9s  %s\n' count "total ms" "max ms" statement
    awk '/LOG:  duration: [0-9.]+ ms  plan:/ {for (i = 1; i <= NF; i++) if ($i == "duration:") d = $(i + 1); want = 1; next}
         want && /Query Text:/ {sub(/.*Query Text: */, ""); if ($0 != "") {k = $0; want = 0} else want = 2; if (!want) {emit = 1}}
         want == 2 && !/Query Text:/ {gsub(/^[ \t]+/, ""); if ($0 != "") {k = $0; want = 0; emit = 1}}
         emit {k = substr(k, 1, 90); n[k]++; t[k] += d; if (d > m[k]) m[k] = d; emit = 0}
         END {for (k in n) printf "%6d %10.0f %9.0f  %s\n", n[k], t[k], m[k], k}' "$SERVER_LOG" \
        | sort -k2,2nr | head -n 15 | sed 's/^/   /'
fi

# ---------------------------------------------------------------- summary
LOG_ISSUES=$(grep -E 'ERROR|FATAL|PANIC|WARNING|dead-lettered|terminated by signal' "$SERVER_LOG" \
    | grep -vc 'terminating background worker "chainstore worker" due to administrator command' || true)
{
    echo "== drain summary  ($(date -u '+%Y-%m-%d %H:%M:%S UTC'))"
    printf '%-9s %9s %9s %11s %-24s %-25s %6s\n' phase records seconds "records/s" "VmRSS MB first/max/last" "RssAnon MB first/max/last" batch
    if [ -n "${R[backlog_records]:-}" ]; then
        printf '%-9s %9s %9.2f %11s %-24s %-25s %6s\n' backlog "${R[backlog_records]}" "${R[backlog_s]}" "${R[backlog_rate]}" \
            "$(mb "${R[b_rss_first]}")/$(mb "${R[b_rss_max]}")/$(mb "${R[b_rss_last]}")" \
            "$(mb "${R[b_anon_first]}")/$(mb "${R[b_anon_max]}")/$(mb "${R[b_anon_last]}")" "$BATCH_SIZE"
    fi
    if [ -n "${R[stream_records]:-}" ]; then
        printf '%-9s %9s %9.2f %11s %-24s %-25s %6s\n' stream "${R[stream_records]}" "${R[stream_s]}" "${R[stream_rate]}" \
            "$(mb "${R[s_rss_first]}")/$(mb "${R[s_rss_max]}")/$(mb "${R[s_rss_last]}")" \
            "$(mb "${R[s_anon_first]}")/$(mb "${R[s_anon_max]}")/$(mb "${R[s_anon_last]}")" "$BATCH_SIZE"
    fi
    [ -n "${R[backlog_records]:-}" ] && echo "backlog: t0 = worker start after the restart, end = commit of the last write-back;" \
        "load ${R[load_s]} s; worker CPU ${R[b_cpu_worker]} s, IPFS node CPU ${R[b_cpu_ipfs]} s, machine ${R[b_busy]}% busy;" \
        "all verified at +$(printf '%.1f' "${R[b_verified_s]}") s; idle worker CPU ${R[b_idle_cpu]} s per 10 s"
    [ -n "${R[stream_records]:-}" ] && echo "stream:  offered $( [ "$STREAM_RATE" = 0 ] && echo unthrottled || echo "$STREAM_RATE rows/s"), captured at ${R[stream_insert_rate]} rows/s" \
        "for ${STREAM_DURATION} s; capture->write-back p50 ${R[s_p50]} s, p95 ${R[s_p95]} s, max ${R[s_max]} s;" \
        "catch-up after the last insert ${R[stream_catchup]} s; idle worker CPU ${R[s_idle_cpu]} s per 10 s"
    echo "target:  >= 20000 records/s on 2 cores, flat RSS"
    echo "machine: nproc $NPROC; load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); $PG_VERSION"
    echo "chainstore.so: $CS_SO_INFO"
    if [ "$(printf '%s\n' "${SO_AT_START[@]}" | sort -u | wc -l)" != 1 ]; then
        echo "WARNING: chainstore.so was replaced between restarts of this run; md5 at each start: ${SO_AT_START[*]}"
    fi
    CS_SO_END=$(md5sum "$CS_SO" 2>/dev/null | cut -c1-12)
    [ "$CS_SO_END" = "${SO_AT_START[-1]}" ] \
        || echo "note: chainstore.so was replaced after the last restart (md5 now $CS_SO_END); the run used ${SO_AT_START[-1]}"
    echo "server log lines with ERROR/FATAL/WARNING/dead-lettered (not counting the worker stopped by our restarts): $LOG_ISSUES"
    (( $(crashes) == 0 )) || echo "CRASHES: $(crashes) server processes terminated by a signal: $(grep -m 3 -A1 'terminated by signal' "$SERVER_LOG" | sed 's/^.*LOG: *//' | tr '\n' ' ')"
    [ -n "${R[notes]:-}" ] && echo "notes: ${R[notes]}"
    echo "files: $OUT_DIR (report.txt, summary.txt, rss-*.txt, progress-backlog.txt, pgbench-stream.log, server.log, ipfs-node.log)"
} | tee "$SUMMARY"
