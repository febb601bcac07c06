#!/usr/bin/env bash
# Run the whole test suite (slow tests included). pytest's "no tests collected" (exit 5) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
# Every write the tests make is checked (read back, or a CRC-32 computed on the device): Session(verify=True).
export UTVM_HOST_VERIFY="${UTVM_HOST_VERIFY:-1}"
"$VENV/bin/python" -m pytest -q "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "run_tests: pytest collected no tests: failing" >&2
  exit 1
fi
exit $rc
