#!/usr/bin/env bash
# THE main command: installs system packages (idempotent), builds, and runs the DAug pipeline on the embedded
# NIH ChestX-ray14 sample (train classifier -> train diffusion -> heatmaps -> train CLIP -> evaluate -> report).
# Extra arguments are passed to `daug run` (e.g. --set run.device=cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
CONFIG=${DAUG_CONFIG:-configs/cpu/daug_nih.toml}
exec ./build/bin/daug run "$CONFIG" "$@"
