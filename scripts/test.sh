#!/usr/bin/env bash
# The test command: on a fresh Debian/Ubuntu machine, install what is missing (apt, venv, pip),
# start the services, then run ruff, mypy (strict on adapter/) and the whole pytest suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not integration").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export VENV=${VENV:-$ROOT/.venv}
scripts/services.sh install
"$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev]'
for p in plugins/*/; do [ -f "$p/pyproject.toml" ] && "$VENV/bin/pip" install -q --disable-pip-version-check -e "$p"; done
scripts/services.sh up
echo "== ruff"; "$VENV/bin/ruff" check adapter tests bench plugins scripts
echo "== mypy"; "$VENV/bin/mypy"
echo "== pytest"
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
# exit code 5 = no tests collected (e.g. a -k filter that matches nothing): not a failure
[ "$rc" = 5 ] && rc=0
exit "$rc"
