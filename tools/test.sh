#!/usr/bin/env bash
# The README's test command: lint (ruff), type-check (mypy), then the test suite; extra arguments go to pytest
# (tools/test.sh -m 'not slow' skips the long cases).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
mypy
python -m pytest -q -n 2 "$@"
