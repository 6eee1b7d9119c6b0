#!/usr/bin/env bash
# CPython's own test modules under km and natively, side by side: module, native result, km result, time ratio.
#   bash tools/python-tests.sh                      # the issue's list of modules (tens of minutes)
#   bash tools/python-tests.sh test_os test_mmap    # some modules (a dotted name picks a subset)
#   KM="km" bash tools/python-tests.sh ...          # an installed km instead of this tree's
# Options: --timeout S (per module under km), --jobs N, --logs DIR (each run's output). See bench/python_tests.py.
set -euo pipefail
exec python3 "$(dirname "$0")/../bench/python_tests.py" "$@"
