#!/usr/bin/env bash
# Lint (ruff) and type-check (mypy) the tree; the README's test command runs this, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
mypy
