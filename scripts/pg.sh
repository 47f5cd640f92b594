#!/usr/bin/env bash
# The embedded PostGIS cluster: a private PostgreSQL 15 under var/pg, reachable only
# through a Unix socket in var/pg/run (mode 0700), trust auth for the owner.
# PG_DIR=DIR puts another cluster in DIR instead (data, run and log below it), on port
# PGPORT: a throwaway cluster beside the embedded one, for a test run.
#   scripts/pg.sh start            initdb when new, start when stopped (idempotent)
#   scripts/pg.sh stop             fast shutdown
#   scripts/pg.sh status
#   scripts/pg.sh createdb NAME    create NAME with PostGIS when missing
# As root the cluster belongs to the `postgres` system user (initdb refuses root).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
PGPORT=${PGPORT:-54329}
base="$here/var/pg"
[ -z "${PG_DIR:-}" ] || base=$(realpath -m "$PG_DIR")
data="$base/data"
run="$base/run"
log="$base/log"
bin=/usr/lib/postgresql/15/bin
superuser=fengqiao

if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  owner=$(id -un)
  as_owner() { "$@"; }
fi

psql_admin() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$run" -p "$PGPORT" -U "$superuser" "$@"; }

init() {
  [ -f "$data/PG_VERSION" ] && return 0
  mkdir -p "$data" "$run" "$log"
  chmod 700 "$data" "$run"
  [ "$owner" = "$(id -un)" ] || chown -R "$owner" "$base"
  if ! as_owner test -w "$data"; then
    echo "The user $owner cannot write $data: every directory above it must be searchable by $owner." >&2
    exit 1
  fi
  echo "Creating the embedded PostgreSQL cluster in $data"
  as_owner "$bin/initdb" -D "$data" -U "$superuser" --auth=trust -E UTF8 --locale=C.UTF-8 >"$log/initdb.log"
  cat >>"$data/postgresql.conf" <<CONF
# embedded cluster: socket only, private directory
listen_addresses = ''
unix_socket_directories = '$run'
unix_socket_permissions = 0700
port = $PGPORT
max_connections = 200
shared_buffers = 512MB
work_mem = 16MB
maintenance_work_mem = 256MB
fsync = on
synchronous_commit = on
logging_collector = off
CONF
}

running() { as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

start() {
  init
  if ! running; then
    as_owner "$bin/pg_ctl" -D "$data" -l "$log/postgres.log" -w -t 60 -o "-p $PGPORT" start >/dev/null
    echo "Embedded PostgreSQL running on socket $run, port $PGPORT"
  fi
}

createdb() {
  local name=$1
  if [ -z "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]; then
    psql_admin -d postgres -c "CREATE DATABASE \"$name\""
    echo "Created database $name"
  fi
  psql_admin -d "$name" -c "CREATE EXTENSION IF NOT EXISTS postgis" 2>/dev/null
}

case "${1:-}" in
  start) start ;;
  stop) if [ -f "$data/PG_VERSION" ] && running; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop; else echo "Embedded PostgreSQL is not running"; fi ;;
  status) if [ -f "$data/PG_VERSION" ] && running; then echo "running (socket $run, port $PGPORT)"; else echo "stopped"; exit 3; fi ;;
  createdb) start; createdb "${2:?database name}" ;;
  *) echo "usage: $0 start|stop|status|createdb NAME" >&2; exit 2 ;;
esac
