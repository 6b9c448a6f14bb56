#!/usr/bin/env bash
# A smoke twin has the same wiring as the config it is the twin of (its `# twin-of: <path>` line): the same tables,
# the same plugin in each, and the same [run].stages; only sizes may differ. Compares `daug config resolve` of both.
# DAUG_CLIP_WEIGHTS is set to a placeholder when unset (resolving does not load weights). Args: DAUG_BINARY SOURCE_DIR TWIN
set -euo pipefail
daug=$1; src=$2; twin=$3
orig=$(sed -n 's/^# twin-of: //p' "$twin" | head -n 1)
[ -n "$orig" ] || { echo "$twin has no '# twin-of:' line"; exit 1; }
export DAUG_CLIP_WEIGHTS=${DAUG_CLIP_WEIGHTS:-/placeholder/ViT-B-32.pt}
wiring() {  # "[table] plugin" per table with a plugin, then the stage list
  "$daug" config resolve "$1" | awk '
    /^\[/ { t = $0; next }
    /^plugin = / { print t, $3 }
    /^stages = / && t == "[run]" { $1 = ""; $2 = ""; print "stages", $0 }' | sort
}
a=$(wiring "$src/$orig") || { echo "cannot resolve $orig"; exit 1; }
b=$(wiring "$twin") || { echo "cannot resolve $twin"; exit 1; }
if [ "$a" != "$b" ]; then
  echo "the twin $twin is wired differently from $orig:"; diff <(echo "$a") <(echo "$b") || true; exit 1
fi
echo "$a"
echo "wiring OK: $twin = $orig"
