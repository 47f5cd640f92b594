#!/usr/bin/env bash
# make run: the web server and the background worker (escalation sweep), stopped together:
# Ctrl-C, a TERM to this script, or either of them ending stops both.
# Usage: scripts/serve.sh BIN HOST PORT WEB_WORKERS
set -uo pipefail
bin=$1 host=$2 port=$3 web_workers=$4

"$bin/flask" --app wsgi worker &
worker_pid=$!
# threads: a map's change stream (server-sent events) holds one while it lasts
"$bin/gunicorn" --bind "$host:$port" --workers "$web_workers" --worker-class gthread --threads 8 \
    --no-control-socket wsgi:app &
web_pid=$!
stop() {
    trap - EXIT INT TERM
    kill "$web_pid" "$worker_pid" 2>/dev/null
    wait "$web_pid" "$worker_pid" 2>/dev/null
}
trap stop EXIT INT TERM

echo "Serving on http://$host:$port/  (API docs: /api/v1/docs); worker pid $worker_pid, web pid $web_pid"
wait -n "$web_pid" "$worker_pid"
