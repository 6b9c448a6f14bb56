#!/usr/bin/env bash
# Builds the out-of-tree example plugin against an installed daug and runs it with the INSTALLED daug, started from a
# directory outside the build tree with no LD_LIBRARY_PATH (an install must start on its own RPATH).
# Args: BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd -P)
src=$(cd "$2" && pwd -P)
prefix=$build/_install
ext=$build/_external_plugin
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" > "$build/_install.log"
launcher=()
if command -v ccache > /dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$src/examples/external_guidance_plugin" -B "$ext" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" > "$ext.configure.log" 2>&1 || { cat "$ext.configure.log"; exit 1; }
cmake --build "$ext"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
daug=(env -u LD_LIBRARY_PATH "$prefix/bin/daug" --plugin-path "$ext/plugins")
"${daug[@]}" version
# (capture, then grep: `daug ... | grep -q` under pipefail fails when grep exits before daug finishes writing)
list=$("${daug[@]}" plugins list)
grep -q "tempered_softmax" <<< "$list" || { echo "tempered_softmax not listed"; echo "$list"; exit 1; }
if grep -q "$build/plugins/" <<< "$list"; then echo "the installed daug loaded build-tree plugins:"; echo "$list"; exit 1; fi
described=$("${daug[@]}" plugins describe tempered_softmax)
grep -q "temperature : float = 2.0" <<< "$described" || { echo "$described"; exit 1; }
# Select it from TOML in the smoke heatmap pipeline.
cfg=$src/examples/external_guidance_plugin/heatmaps_tempered.toml
"${daug[@]}" run "$cfg" --set "run.runs_dir=\"$tmp/runs\"" --set "run.cache_dir=\"$tmp/cache\"" > "$tmp/out.txt" 2>&1 \
  || { cat "$tmp/out.txt"; exit 1; }
grep -q "tempered_softmax" "$tmp"/runs/latest/plugins.txt || { cat "$tmp"/runs/latest/plugins.txt; exit 1; }
grep -q "$prefix/lib/daug/plugins/libdaug-plugin-stage_heatmaps.so" "$tmp"/runs/latest/plugins.txt \
  || { echo "stages not built from the installed plugins:"; cat "$tmp"/runs/latest/plugins.txt; exit 1; }
echo "external plugin OK"
