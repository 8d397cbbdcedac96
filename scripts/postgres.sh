#!/usr/bin/env bash
# A PostgreSQL cluster on loopback for the Prefect and MLflow servers, from Debian's packages
# (scripts/install-system-packages.sh installs them when missing).
#   scripts/postgres.sh start DIR PORT   initialise DIR once, start on 127.0.0.1:PORT, create the
#                                        databases `prefect` and `mlflow`; prints the two URLs
#   scripts/postgres.sh stop DIR
# Connections from 127.0.0.1 as user `postgres` are trusted: for a test or a single-host setup,
# not for a shared network. PostgreSQL refuses to run as root, so as root it runs as `postgres`
# (DIR must then be reachable by that user, e.g. a folder directly under /tmp).
set -euo pipefail
action=${1:?usage: postgres.sh start DIR PORT | stop DIR}
dir=${2:?data folder}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "error: PostgreSQL is not installed (run scripts/install-system-packages.sh)" >&2; exit 3; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$action" in
start)
    port=${3:?port}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir" && chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" --pgdata "$dir/data" --username postgres --auth trust --encoding UTF8 \
            --no-instructions >/dev/null
    fi
    as_owner "$bindir/pg_ctl" --pgdata "$dir/data" --log "$dir/postgres.log" --wait --timeout 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
    for db in prefect mlflow; do
        as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
            || as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    done
    echo "PREFECT_SERVER_DATABASE_CONNECTION_URL=postgresql+asyncpg://postgres@127.0.0.1:$port/prefect"
    echo "MLFLOW_BACKEND_STORE_URI=postgresql://postgres@127.0.0.1:$port/mlflow"
    ;;
stop)
    as_owner "$bindir/pg_ctl" --pgdata "$dir/data" --mode fast --wait stop >/dev/null
    ;;
*)
    echo "usage: postgres.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
