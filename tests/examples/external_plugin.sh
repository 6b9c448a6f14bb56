#!/usr/bin/env bash
# Builds the out-of-tree example plugin against an installed daug and runs it. Args: BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
prefix=$build/_install
ext=$build/_external_plugin
cmake --install "$build" --prefix "$prefix" > "$build/_install.log"
cmake -S "$src/examples/external_guidance_plugin" -B "$ext" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" > "$ext.configure.log" 2>&1 || { cat "$ext.configure.log"; exit 1; }
cmake --build "$ext"
daug="$build/bin/daug --plugin-path $ext/plugins"
# (capture, then grep: `daug ... | grep -q` under pipefail fails when grep exits before daug finishes writing)
list=$($daug plugins list)
grep -q "tempered_softmax" <<< "$list" || { echo "tempered_softmax not listed"; echo "$list"; exit 1; }
described=$($daug plugins describe tempered_softmax)
grep -q "temperature : float = 2.0" <<< "$described" || { echo "$described"; exit 1; }
# Select it from TOML in the smoke heatmap pipeline.
cfg=$src/examples/external_guidance_plugin/heatmaps_tempered.toml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$daug run "$cfg" --set "run.runs_dir=\"$tmp/runs\"" --set "run.cache_dir=\"$tmp/cache\"" > "$tmp/out.txt" 2>&1 \
  || { cat "$tmp/out.txt"; exit 1; }
grep -q "tempered_softmax" "$tmp"/runs/latest/plugins.txt || { cat "$tmp"/runs/latest/plugins.txt; exit 1; }
echo "external plugin OK"
