#!/usr/bin/env bash
# bench/capture.sh -- capture (write-path) benchmark for chainstore.
#
# Starts ONE throwaway PostgreSQL 15 cluster (port 54341, unix socket in a private
# directory under /tmp, no TCP), and measures side by side, in the same run:
#   A  plain      a plain table, no trigger
#   B  chainstore the same table tracked by chainstore (C trigger)
#   C  plpgsql    the same table with the PL/pgSQL + pgcrypto trigger of
#                 bench/plpgsql_capture.sql doing equivalent work
# on three workloads:
#   1  bulk INSERT ... SELECT generate_series of $BULK_ROWS rows        (seconds)
#   2  pgbench, $CLIENTS clients, single-row INSERT, unique keys          (tps)
#   3  pgbench, $CLIENTS clients, single-row UPDATE of a random row of a
#      table pre-filled with $UPDATE_ROWS rows (the pre-fill is timed too) (tps)
#
# Usage:  bash bench/capture.sh            (see bench/README.md; knobs below)
# It is a benchmark, not a test: it reports numbers and never fails on them.
# Exit status is non-zero only if the harness itself breaks (cluster won't start...).
# A chainstore error is reported verbatim and that column shows "error".

set -Eeuo pipefail
trap 'echo "capture.sh: line $LINENO: command failed: $BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------- knobs
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54341}
BULK_ROWS=${BULK_ROWS:-200000}       # workload 1
UPDATE_ROWS=${UPDATE_ROWS:-100000}   # workload 3 pre-fill
DURATION=${DURATION:-15}             # seconds per pgbench run (workloads 2, 3)
CLIENTS=${CLIENTS:-2}                # pgbench -c and -j
PROTOCOL=${PROTOCOL:-prepared}       # pgbench -M: simple | extended | prepared
ROUNDS=${ROUNDS:-1}                  # repeat every workload (fresh database each); medians reported
SHARED_BUFFERS=${SHARED_BUFFERS:-512MB}
SYNC_COMMIT=${SYNC_COMMIT:-off}      # synchronous_commit, same for all three variants
EXTRA_CONF=${EXTRA_CONF:-}           # extra postgresql.conf lines (newline separated), e.g.
                                     #   EXTRA_CONF="shared_preload_libraries = 'chainstore'"
WORKLOADS=${WORKLOADS:-"bulk insert update"}   # subset/order of workloads to run
STATEMENT_TIMEOUT=${STATEMENT_TIMEOUT:-15min}   # bounds every single statement (a quadratic trigger, a hang)
KEEP=${KEEP:-0}                      # 1 = keep the cluster directory after the run
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT_ROOT=${OUT_ROOT:-$BENCH_DIR/out}

die() { echo "capture.sh: $*" >&2; exit 2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$BULK_ROWS"   && (( BULK_ROWS >= 1 ))                      || die "BULK_ROWS must be a positive integer"
is_uint "$UPDATE_ROWS" && (( UPDATE_ROWS >= 1 ))                    || die "UPDATE_ROWS must be a positive integer"
is_uint "$DURATION"    && (( DURATION >= 1 && DURATION <= 3600 ))   || die "DURATION must be 1..3600 seconds"
is_uint "$CLIENTS"     && (( CLIENTS >= 1 && CLIENTS <= 64 ))       || die "CLIENTS must be 1..64"
is_uint "$ROUNDS"      && (( ROUNDS >= 1 && ROUNDS <= 20 ))         || die "ROUNDS must be 1..20"
is_uint "$PORT"                                                      || die "PORT must be a number"
[[ $STATEMENT_TIMEOUT =~ ^[0-9]+(ms|s|min|h)?$ ]]                    || die "STATEMENT_TIMEOUT must look like 900s or 15min"
[[ $PROTOCOL =~ ^(simple|extended|prepared)$ ]]                      || die "PROTOCOL must be simple, extended or prepared"
for w in $WORKLOADS; do [[ $w =~ ^(bulk|insert|update)$ ]] || die "unknown workload '$w' (bulk insert update)"; done
for b in initdb pg_ctl postgres psql pgbench; do [ -x "$PGBIN/$b" ] || die "$PGBIN/$b not found"; done
[ -r "$BENCH_DIR/plpgsql_capture.sql" ] || die "$BENCH_DIR/plpgsql_capture.sql not found"

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
OUT_DIR=$OUT_ROOT/capture-$STAMP
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d /tmp/chainstore-bench.XXXXXX)
chmod 700 "$WORK"
if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; fi
PGDATA_DIR=$WORK/data
SOCK=$WORK            # unix socket directory
SERVER_LOG=$WORK/server.log
REPORT=$OUT_DIR/report.txt
STARTED=0

cleanup() {
    local rc=$?
    set +e
    if [ "$STARTED" = 1 ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -t 60 stop >/dev/null 2>&1 \
            || as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -t 30 stop >/dev/null 2>&1
        STARTED=0
    fi
    [ -f "$SERVER_LOG" ] && cp "$SERVER_LOG" "$OUT_DIR/server.log" 2>/dev/null
    if [ "$rc" != 0 ] && [ -f "$SERVER_LOG" ]; then
        echo "capture.sh: aborted (exit $rc); last server log lines:" >&2
        tail -n 15 "$SERVER_LOG" >&2
    fi
    if [ "$KEEP" = 1 ]; then
        echo "capture.sh: cluster directory kept: $WORK" >&2
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

# ---------------------------------------------------------------- cluster
echo "== chainstore capture benchmark  ($(date -u '+%Y-%m-%d %H:%M:%S UTC'))"
as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U "$DB_OWNER" -E UTF8 --no-locale --auth=trust \
    >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; die "initdb failed"; }

CONF_LINES="# --- bench/capture.sh settings (identical for all three variants)
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PORT
max_connections = 20
shared_buffers = $SHARED_BUFFERS
fsync = on
full_page_writes = on
synchronous_commit = $SYNC_COMMIT
wal_level = replica
max_wal_size = 8GB
min_wal_size = 1GB
checkpoint_timeout = 30min
autovacuum = off
jit = off
statement_timeout = '$STATEMENT_TIMEOUT'
lock_timeout = '5min'
lc_messages = 'C'
log_min_messages = warning
log_checkpoints = off"
{
    echo "$CONF_LINES"
    if [ -n "$EXTRA_CONF" ]; then echo "# --- EXTRA_CONF"; echo "$EXTRA_CONF"; fi
} | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null

as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$SERVER_LOG" -w -t 120 start >/dev/null \
    || { cat "$SERVER_LOG" 2>/dev/null; die "could not start the cluster"; }
STARTED=1

# ---------------------------------------------------------------- machine / settings
PG_VERSION=$(psql_db postgres <<<"SELECT version();")
CS_AVAIL=$(psql_db postgres <<<"SELECT coalesce(max(default_version), '') FROM pg_available_extensions WHERE name = 'chainstore';")
CRYPTO_AVAIL=$(psql_db postgres <<<"SELECT coalesce(max(default_version), '') FROM pg_available_extensions WHERE name = 'pgcrypto';")
[ -n "$CRYPTO_AVAIL" ] || die "pgcrypto is not available (install postgresql-contrib for PostgreSQL 15)"

echo
echo "-- machine"
echo "nproc:        $(nproc)"
echo "cpu:          $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo '?')"
echo "memory:       $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || echo '?')"
echo "kernel:       $(uname -sr)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')  (at start; other work on the machine skews the numbers)"
echo "data dir fs:  $(df -PT "$WORK" 2>/dev/null | awk 'NR==2 {print $2" on "$1}')"
echo "postgres:     $PG_VERSION"
echo "pgcrypto:     $CRYPTO_AVAIL"
if [ -n "$CS_AVAIL" ]; then
    CS_SO=$("$PGBIN/pg_config" --pkglibdir 2>/dev/null)/chainstore.so
    echo "chainstore:   $CS_AVAIL ($( [ -f "$CS_SO" ] && echo "$CS_SO $(stat -c %s "$CS_SO") bytes, modified $(date -u -r "$CS_SO" '+%F %T UTC')" || echo "no $CS_SO"))"
else
    echo "chainstore:   NOT INSTALLED -- column B is skipped (no chainstore.control in $("$PGBIN/pg_config" --sharedir 2>/dev/null || echo '?')/extension)"
fi
echo
echo "-- settings"
psql_db postgres <<'SQL' | sed 's/^/  /'
SELECT rpad(name, 28) || current_setting(name)
  FROM pg_settings
 WHERE name IN ('shared_buffers','fsync','synchronous_commit','full_page_writes','wal_level',
                'max_wal_size','checkpoint_timeout','autovacuum','jit','shared_preload_libraries',
                'wal_compression','huge_pages','work_mem','maintenance_work_mem',
                'statement_timeout')
 ORDER BY name;
SQL
if [ -n "$EXTRA_CONF" ]; then echo "  EXTRA_CONF:"; echo "$EXTRA_CONF" | sed 's/^/    /'; fi
echo "  bulk rows $BULK_ROWS, update pre-fill $UPDATE_ROWS, pgbench -c $CLIENTS -j $CLIENTS -T $DURATION -M $PROTOCOL, rounds $ROUNDS"
echo "  between measurements: VACUUM ANALYZE; CHECKPOINT"
echo "  order within each workload: plain, chainstore, plpgsql in round 1, rotated by one each further round"
echo "  (each variant on its own table, all three in one fresh database per workload and round)"
echo "  plpgsql leaf = sha256(sha256(leaf_input)): pgcrypto has no keccak-256"

# ---------------------------------------------------------------- helpers
VARIANTS=(plain cs pl)
declare -A TABLE=([plain]=purchases_plain [cs]=purchases_cs [pl]=purchases_pl)
declare -A VNAME=([plain]=plain [cs]=chainstore [pl]=plpgsql)
declare -A RES=()      # RES[metric,variant] = space separated values (one per round)
declare -A SKIP=()     # SKIP[variant,db] = reason
ERRORS=()              # verbatim error reports
NOTES=()               # sanity-check lines

add_res() { RES[$1,$2]="${RES[$1,$2]:-}${RES[$1,$2]:+ }$3"; }
add_error() { ERRORS+=("$1"); printf '   !! %s\n' "${1//$'\n'/$'\n      '}"; }

purchases_ddl() {  # purchases_ddl TABLE
    cat <<SQL
CREATE TABLE public.$1 (
    id          bigint PRIMARY KEY,
    buyer       text NOT NULL,
    listing_id  int NOT NULL,
    amount      numeric(12,2) NOT NULL,
    currency    text NOT NULL,
    created_at  timestamptz NOT NULL,
    note        text
);
CREATE SEQUENCE public.${1}_ins_seq;
SQL
}

# Build a fresh database with the three tables and their capture machinery.
setup_db() {  # setup_db DB
    local db=$1 err ntrig
    as_pg "$PGBIN/createdb" -h "$SOCK" -p "$PORT" "$db"
    for v in "${VARIANTS[@]}"; do purchases_ddl "${TABLE[$v]}"; done | psql_db "$db" >/dev/null

    # C: PL/pgSQL + pgcrypto trigger
    if ! err=$( {
            echo "CREATE EXTENSION pgcrypto;"
            cat "$BENCH_DIR/plpgsql_capture.sql"
            echo "CREATE TRIGGER purchases_pl_capture AFTER INSERT OR UPDATE OR DELETE ON public.purchases_pl"
            echo "    FOR EACH ROW EXECUTE FUNCTION bench_pl.capture('id');"
        } | psql_db "$db" 2>&1 >/dev/null ); then
        SKIP[pl,$db]="setup failed"
        add_error "plpgsql setup in database $db failed:
$err"
    fi

    # B: chainstore
    if [ -z "$CS_AVAIL" ]; then
        SKIP[cs,$db]="chainstore extension not installed"
        return 0
    fi
    if ! err=$(psql_db "$db" 2>&1 <<'SQL'
CREATE EXTENSION chainstore CASCADE;
SELECT chainstore.track('public.purchases_cs');
SQL
    ); then
        SKIP[cs,$db]="setup failed"
        add_error "chainstore setup in database $db failed:
CREATE EXTENSION chainstore CASCADE; SELECT chainstore.track('public.purchases_cs');
$err"
        return 0
    fi
    # make sure track() really attached a trigger, else B would silently measure a plain table
    ntrig=$(psql_db "$db" <<<"SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.purchases_cs'::regclass AND NOT tgisinternal AND tgtype & 1 = 1;")
    if [ "$ntrig" = 0 ]; then
        SKIP[cs,$db]="no row trigger after track()"
        add_error "chainstore.track('public.purchases_cs') returned but the table has no row trigger (database $db)"
    fi
    return 0
}

settle() {  # settle DB   -- between measurements
    local i
    for (( i = 1; i <= 2; i++ )); do
        psql_db "$1" >/dev/null 2>&1 <<'SQL' && return 0
VACUUM ANALYZE;
CHECKPOINT;
SQL
        # the server may be in crash recovery (a crashing trigger); wait up to 120 s once
        echo "   (VACUUM/CHECKPOINT failed, waiting for the server: $(tail -n 1 "$SERVER_LOG" 2>/dev/null))"
        as_pg "$PGBIN/pg_isready" -h "$SOCK" -p "$PORT" -t 120 >/dev/null 2>&1 || true
    done
    die "the server is not usable any more (see $OUT_DIR/server.log)"
}

# bulk DB VARIANT ROWS METRIC  -- times one INSERT ... SELECT generate_series
bulk() {
    local db=$1 v=$2 rows=$3 metric=$4 t=${TABLE[$2]} out
    if [ -n "${SKIP[$v,$db]:-}" ]; then printf '   %-10s %-22s skipped (%s)\n' "${VNAME[$v]}" "$metric" "${SKIP[$v,$db]}"; return 0; fi
    settle "$db"
    if out=$(psql_db "$db" 2>&1 <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0, pg_current_wal_insert_lsn() AS l0 \gset
INSERT INTO public.$t (id, buyer, listing_id, amount, currency, created_at, note)
SELECT g,
       'buyer' || (g % 5000),
       (g * 7919) % 100000,
       ((g * 37) % 1000000) / 100.0,
       CASE WHEN g % 3 = 0 THEN 'USD' ELSE 'EUR' END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || md5(g::text) END
  FROM generate_series(1, $rows) AS g;
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3)
       || ' ' || pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'l0');
SQL
    ); then
        local secs=${out%% *} walb=${out##* }
        add_res "$metric" "$v" "$secs"
        add_res "$metric-wal" "$v" "$(( walb / rows ))"
        printf '   %-10s %-22s %8.3f s    WAL %6.1f MB (%d B/row)\n' "${VNAME[$v]}" "$metric" "$secs" \
            "$(awk -v b="$walb" 'BEGIN {print b / 1048576}')" "$(( walb / rows ))"
    else
        add_res "$metric" "$v" "error"
        add_error "${VNAME[$v]} $metric (database $db) failed:
$out"
        SKIP[$v,$db]="failed in an earlier step"
    fi
    return 0
}

# pgb DB VARIANT KIND METRIC  -- one pgbench run, KIND = insert | update
pgb() {
    local db=$1 v=$2 kind=$3 metric=$4 t=${TABLE[$2]} script log rc tps n failed lsn0 walb
    if [ -n "${SKIP[$v,$db]:-}" ]; then printf '   %-10s %-22s skipped (%s)\n' "${VNAME[$v]}" "$metric" "${SKIP[$v,$db]}"; return 0; fi
    script=$WORK/$kind-$t.sql
    if [ "$kind" = insert ]; then
        cat >"$script" <<SQL
\set buyer random(1, 5000)
\set listing random(1, 100000)
\set cents random(100, 99999999)
INSERT INTO public.$t (id, buyer, listing_id, amount, currency, created_at, note)
VALUES (nextval('public.${t}_ins_seq'), 'buyer' || :buyer::text, :listing, :cents / 100.0, 'EUR', now(), 'pgbench insert');
SQL
    else
        cat >"$script" <<SQL
\set id random(1, $UPDATE_ROWS)
UPDATE public.$t SET amount = amount + 0.01 WHERE id = :id;
SQL
    fi
    chmod 644 "$script"
    settle "$db"
    log=$OUT_DIR/pgbench-$db-$kind-${VNAME[$v]}.log
    lsn0=$(psql_db postgres <<<"SELECT pg_current_wal_insert_lsn();")
    rc=0
    as_pg "$PGBIN/pgbench" -n -h "$SOCK" -p "$PORT" -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" \
        -M "$PROTOCOL" -f "$script" "$db" >"$log" 2>&1 || rc=$?
    tps=$(awk '/^tps = / {print $3; exit}' "$log")
    n=$(awk -F': ' '/^number of transactions actually processed/ {split($2, a, "/"); print a[1]; exit}' "$log")
    failed=$(awk -F': ' '/^number of failed transactions/ {split($2, a, " "); print a[1]; exit}' "$log")
    if [ "$rc" != 0 ] || [ -z "$tps" ] || [ "${failed:-0}" != 0 ]; then
        add_res "$metric" "$v" "error"
        add_error "${VNAME[$v]} $metric (database $db): pgbench exit $rc, tps '${tps:-}', failed '${failed:-?}'; first error lines:
$(grep -m 5 -E 'ERROR|FATAL|aborted|error' "$log" || tail -n 5 "$log")"
        SKIP[$v,$db]="failed in an earlier step"
        return 0
    fi
    walb=$(psql_db postgres <<<"SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn0');")
    walb=${walb%.*}
    tps=$(awk -v x="$tps" 'BEGIN {printf "%.1f", x}')
    add_res "$metric" "$v" "$tps"
    add_res "$metric-n" "$v" "$n"
    add_res "$metric-wal" "$v" "$(( walb / (n > 0 ? n : 1) ))"
    printf '   %-10s %-22s %10.1f tps  (%s transactions, WAL %d B/txn)\n' "${VNAME[$v]}" "$metric" "$tps" "$n" \
        "$(( walb / (n > 0 ? n : 1) ))"
}

# Versions / outbox written, compared with what the workload did.
sanity() {  # sanity DB EXPECTED_CS EXPECTED_PL
    local db=$1 line="$1:" v schema exp got
    for v in pl cs; do
        if [ "$v" = pl ]; then schema=bench_pl exp=$3; else schema=chainstore exp=$2; fi
        if [ -n "${SKIP[$v,$db]:-}" ]; then
            line="$line ${VNAME[$v]} skipped;"
            continue
        fi
        if got=$(psql_db "$db" 2>&1 <<<"SELECT (SELECT count(*) FROM $schema.versions) || '/' || (SELECT count(*) FROM $schema.outbox);"); then
            line="$line ${VNAME[$v]} versions/outbox $got (expected $exp)"
            [ "${got%%/*}" = "$exp" ] || line="$line << MISMATCH"
            line="$line;"
        else
            line="$line ${VNAME[$v]} count failed: $got;"
        fi
    done
    NOTES+=("${line%;}")
    echo "   sanity: ${line%;}"
}

n_of() { local s=${RES[$1-n,$2]:-0}; echo "${s##* }"; }   # transactions of the latest round

# ---------------------------------------------------------------- warm-up
# A fresh cluster has to create every WAL segment it writes, later runs reuse the
# recycled ones; without a warm-up whichever variant runs first pays for that.
# Write ~640 MB of WAL once, then checkpoint so the segments get recycled.
echo
echo "-- warm-up (~640 MB of WAL, then CHECKPOINT, so no variant pays for creating WAL segments)"
as_pg "$PGBIN/createdb" -h "$SOCK" -p "$PORT" bench_warmup
psql_db bench_warmup >/dev/null <<'SQL'
CREATE TABLE warm (id int, pad text);
INSERT INTO warm SELECT g, repeat('x', 1000) FROM generate_series(1, 600000) AS g;
SQL
as_pg "$PGBIN/dropdb" -h "$SOCK" -p "$PORT" bench_warmup
psql_db postgres >/dev/null <<'SQL'
CHECKPOINT;
CHECKPOINT;
SQL

# ---------------------------------------------------------------- workloads
for (( r = 1; r <= ROUNDS; r++ )); do
    for w in $WORKLOADS; do
        db="bench_${w}_r$r"
        # round r runs the variants rotated by r-1 (plain,cs,pl / cs,pl,plain / ...)
        ORDER=()
        for (( i = 0; i < 3; i++ )); do ORDER+=("${VARIANTS[$(( (i + r - 1) % 3 ))]}"); done
        echo
        echo "-- round $r/$ROUNDS, workload '$w' (database $db, order: ${ORDER[*]})"
        setup_db "$db"
        case $w in
        bulk)
            for v in "${ORDER[@]}"; do bulk "$db" "$v" "$BULK_ROWS" bulk; done
            sanity "$db" "$BULK_ROWS" "$BULK_ROWS"
            ;;
        insert)
            for v in "${ORDER[@]}"; do pgb "$db" "$v" insert insert; done
            sanity "$db" "$(n_of insert cs)" "$(n_of insert pl)"
            ;;
        update)
            for v in "${ORDER[@]}"; do bulk "$db" "$v" "$UPDATE_ROWS" prefill; done
            for v in "${ORDER[@]}"; do pgb "$db" "$v" update update; done
            sanity "$db" "$(( UPDATE_ROWS + $(n_of update cs) ))" "$(( UPDATE_ROWS + $(n_of update pl) ))"
            ;;
        esac
        # keep the disk footprint bounded across rounds
        as_pg "$PGBIN/dropdb" -h "$SOCK" -p "$PORT" "$db" || true
    done
done

# ---------------------------------------------------------------- summary
median() {  # median of numbers; "error" if any run errored, "-" if none
    local vals=$1
    [ -z "$vals" ] && { echo "-"; return; }
    [[ " $vals " == *" error "* ]] && { echo "error"; return; }
    tr ' ' '\n' <<<"$vals" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
fmt() {  # fmt VALUE UNIT
    case $1 in -|error) echo "$1";; *)
        case $2 in
        s)   awk -v x="$1" 'BEGIN {printf (x < 10 ? "%.2f s" : "%.1f s"), x}';;
        tps) awk -v x="$1" 'BEGIN {printf "%.0f tps", x}';;
        *)   awk -v x="$1" -v u="$2" 'BEGIN {printf "%.0f %s", x, u}';;
        esac;;
    esac
}
ratio() {  # ratio VALUE PLAIN
    case "$1 $2" in *-*|*error*) echo "-";; *) awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "-"}';; esac
}

echo
echo "== results$( (( ROUNDS > 1 )) && echo " (median of $ROUNDS rounds)")"
printf '%-22s %-12s %-15s %-18s %-9s %s\n' workload plain "chainstore(C)" "plpgsql+pgcrypto" "C/plain" "plpgsql/plain"
row() {  # row LABEL METRIC UNIT
    local p c l
    [ -z "${RES[$2,plain]:-}${RES[$2,cs]:-}${RES[$2,pl]:-}" ] && return 0
    p=$(median "${RES[$2,plain]:-}"); c=$(median "${RES[$2,cs]:-}"); l=$(median "${RES[$2,pl]:-}")
    printf '%-22s %-12s %-15s %-18s %-9s %s\n' "$1" "$(fmt "$p" "$3")" "$(fmt "$c" "$3")" "$(fmt "$l" "$3")" \
        "$(ratio "$c" "$p")" "$(ratio "$l" "$p")"
}
row "bulk insert $(( BULK_ROWS / 1000 ))k" bulk s
row "pgbench insert" insert tps
row "prefill $(( UPDATE_ROWS / 1000 ))k (bulk)" prefill s
row "pgbench update" update tps
echo
echo "WAL written per row (bulk) or per transaction (pgbench), bytes:"
walrow() {  # walrow LABEL METRIC
    local p c l
    [ -z "${RES[$2-wal,plain]:-}${RES[$2-wal,cs]:-}${RES[$2-wal,pl]:-}" ] && return 0
    p=$(median "${RES[$2-wal,plain]:-}"); c=$(median "${RES[$2-wal,cs]:-}"); l=$(median "${RES[$2-wal,pl]:-}")
    printf '%-22s %-12s %-15s %-18s %-9s %s\n' "$1" "$(fmt "$p" B)" "$(fmt "$c" B)" "$(fmt "$l" B)" "$(ratio "$c" "$p")" "$(ratio "$l" "$p")"
}
walrow "bulk insert" bulk
walrow "pgbench insert" insert
walrow "prefill (bulk)" prefill
walrow "pgbench update" update
echo
echo "ratios: for seconds, >1x means slower than plain; for tps, <1x means slower than plain."
echo "plpgsql+pgcrypto computes leaf = sha256(sha256(leaf_input)) because pgcrypto has no keccak-256;"
echo "its row encoding is jsonb text, not chainstore's canonical binary encoding."
if (( ROUNDS > 1 )); then
    echo
    echo "per-round values:"
    for m in bulk insert prefill update; do
        for v in "${VARIANTS[@]}"; do
            [ -n "${RES[$m,$v]:-}" ] && printf '  %-8s %-11s %s\n' "$m" "${VNAME[$v]}" "${RES[$m,$v]}"
        done
    done
fi
if [ -z "$CS_AVAIL" ]; then
    echo
    echo "chainstore: SKIPPED -- the extension is not installed in this PostgreSQL (no chainstore.control)."
fi
if (( ${#NOTES[@]} )); then
    echo
    echo "sanity (rows written by the capture triggers):"
    printf '  %s\n' "${NOTES[@]}"
fi
if (( ${#ERRORS[@]} )); then
    echo
    echo "ERRORS (verbatim):"
    for e in "${ERRORS[@]}"; do echo "----"; echo "$e"; done
    echo "----"
fi
echo
echo "report: $REPORT  (pgbench logs and server.log in the same directory)"
