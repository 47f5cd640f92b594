#!/usr/bin/env bash
# Install the Debian packages the project needs when they are missing:
# PostGIS for the embedded database (and the test database), python3-venv for the
# virtualenv, npm for the front-end libraries, Chromium and its driver for the browser
# tests, a CJK font for Chinese text in pages and reports, Pango for the reports' PDF
# (WeasyPrint draws text with it).
# With BENCH=1 also the benchmark-only tools (wrk, the HTTP load generator; pgbench
# comes with postgresql-15), so that `make run` and `make test` never need them.
# Runs apt only when something is missing, so a second run costs nothing.
set -euo pipefail

PYTHON=${PYTHON:-python3}
missing=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/postgis.control ] || missing+=(postgresql-15-postgis-3)
"$PYTHON" -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)  # browser tests (headless)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)  # …driven by selenium
# Chinese text in pages (and their screenshots) and in reports
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing+=(fonts-noto-cjk)
# the reports' PDF: WeasyPrint loads Pango (and through it HarfBuzz and fontconfig)
/sbin/ldconfig -p 2>/dev/null | grep 'libpangoft2-1.0.so.0' >/dev/null || missing+=(libpango-1.0-0 libpangoft2-1.0-0)
if [ "${BENCH:-0}" = 1 ]; then
  command -v wrk >/dev/null || missing+=(wrk)
fi

[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing system packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "Need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
