#!/usr/bin/env bash
# THE test command: installs system packages (idempotent), builds everything, runs the whole test suite.
# Used as-is by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
start=$(date +%s)
./scripts/build.sh
built=$(date +%s)
echo "build: $((built - start)) s"
# Torch-heavy tests run in parallel with one LibTorch thread each (two 2-thread processes would spin-wait).
export OMP_NUM_THREADS=1
ctest --test-dir "${DAUG_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"
echo "tests: $(( $(date +%s) - built )) s"
