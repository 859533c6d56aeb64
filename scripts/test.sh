#!/usr/bin/env bash
# The test command: installs what is missing, builds everything (tests and benchmarks
# included) and runs the whole suite. Tests start their own redis-server on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
setup_for_tests=1
source scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
