#!/usr/bin/env bash
# Mutation testing: applies each mutant of tests/mutants/catalogue (one
# realistic bug: an exact text of a source file and its replacement) to a
# scratch copy of the tree, builds, runs the tests the mutant names, and
# prints which test caught it and how fast.  Fails if any mutant survives
# or is stale (its text is no longer in the code).
#   scripts/mutate.sh            every mutant (about 6 minutes here)
#   scripts/mutate.sh --quick    the quick subset (scripts/test-all.sh)
#   scripts/mutate.sh --list     the catalogue
#   scripts/mutate.sh --only NAME [--verbose]
# Scratch tree and build: build/mutate/ (kept, so later runs are incremental).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/mutate.py "$@"
