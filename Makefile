# Fengqiao — the README's commands.
#   make run    set up everything and serve http://127.0.0.1:$(PORT) with demo data (and the worker)
#   make test   set up everything and run the whole suite against a real PostGIS
#   make bench  set up everything and run the benchmarks (results in docs/BENCHMARKS.md)
#   make durability  kill -9 the database, web server and worker under load, then check
#               that nothing acknowledged was lost or doubled (docs/OPERATIONS.md)
#   make stop   stop the embedded PostgreSQL cluster
# DATABASE_URL=postgresql://… replaces the embedded cluster with any PostGIS.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
HOST ?= 127.0.0.1
PGPORT ?= 54329
WEB_WORKERS ?= 2
export PGPORT
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test bench durability stop setup deps db migrate demo system-deps

run: setup demo
	@scripts/serve.sh $(BIN) $(HOST) $(PORT) $(WEB_WORKERS)

test: deps db-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# BENCH=1: the benchmark-only system packages too (wrk); BENCH_ARGS="--help" lists options.
bench: deps db-bench
	@BENCH=1 scripts/system-deps.sh
	$(BIN)/python -m bench $(BENCH_ARGS)

# Its own throwaway cluster, server, worker and fake FCM; DURABILITY_ARGS="--help" lists options.
durability: deps
	$(BIN)/python scripts/durability.py $(DURABILITY_ARGS)

stop:
	@scripts/pg.sh stop

setup: deps db migrate

system-deps:
	@scripts/system-deps.sh

deps: system-deps $(VENV)/.installed server/web/node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

# --ignore-scripts: static assets need no install scripts (swagger-ui-dist's analytics
# dependency would try to reach the internet).
server/web/node_modules/.installed: server/web/package.json server/web/package-lock.json
	cd server/web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# The embedded cluster, unless DATABASE_URL points elsewhere.
db:
ifndef DATABASE_URL
	@scripts/pg.sh createdb fengqiao
endif

db-test:
ifndef TEST_DATABASE_URL
	@scripts/pg.sh createdb fengqiao_test
endif

db-bench:
ifndef BENCH_DATABASE_URL
	@scripts/pg.sh createdb fengqiao_bench
endif

migrate: deps db
	@$(FLASK) db upgrade 2>&1 | grep -v '^INFO  \[alembic.runtime.migration\] \(Context impl\|Will assume\)' || true

demo: migrate
	$(FLASK) demo load
