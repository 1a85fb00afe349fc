#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environment the API client tests run in:
# target/api-test-venv with the pinned `openai` and `prometheus_client` packages from PyPI
# (node/tests/api/requirements.txt). Prints the interpreter's path. Fails, never skips, when
# python3, its venv module or PyPI is missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/node/tests/api/requirements.txt"
venv="${CARGO_TARGET_DIR:-$root/target}/api-test-venv"
stamp="$venv/.requirements"
python="${OPENGATEWAY_PYTHON:-python3}"
mkdir -p "$(dirname "$venv")"
# Tests run in parallel processes: one builds the environment, the others wait for it.
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  echo "$venv/bin/python"
  exit 0
fi
command -v "$python" >/dev/null || { echo "api-test-venv: $python is not installed" >&2; exit 1; }
rm -rf "$venv"
"$python" -m venv "$venv" >&2 || { echo "api-test-venv: python3 -m venv failed (install python3-venv)" >&2; exit 1; }
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$req" >&2 ||
  { echo "api-test-venv: pip could not install $req from PyPI" >&2; exit 1; }
"$venv/bin/python" -c 'import openai, prometheus_client' >&2
cp "$req" "$stamp"
echo "$venv/bin/python"
