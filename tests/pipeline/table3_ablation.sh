#!/usr/bin/env bash
# Smoke: the Table-3 ablation set through `daug ablate`, as its instant twins configs/smoke/table3/{clip_baseline,
# daug_clip,daug_hybrid}.toml (the paper variants with tiny sizes; tests/smoke checks that their wiring equals the
# originals'). It writes ONE comparison table with the three variants side by side, and the heatmap stages are
# shared by the variants through the cache. Args: DAUG_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
daug=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
variants=(clip_baseline daug_clip daug_hybrid)
configs=(); for v in "${variants[@]}"; do configs+=("$src/configs/smoke/table3/$v.toml"); done
cd "$work"
"$daug" ablate "${configs[@]}" --out "$work/comparison" \
  --set "run.runs_dir=\"$work/runs\"" --set "run.cache_dir=\"$work/cache\"" \
  --columns map@5 --columns auc > "$work/out.txt" 2>&1 || { cat "$work/out.txt"; exit 1; }
cat "$work/comparison/comparison.md"
for v in "${variants[@]}"; do
  grep -q "^| $v | ok |" "$work/comparison/comparison.md" || { echo "variant $v missing or failed"; exit 1; }
done
n=$(ls -d "$work"/cache/heatmaps-* | wc -l)
[ "$n" -eq 1 ] || { echo "expected the 2 DAug variants to share one heatmap stage output, found $n"; exit 1; }
echo "table3 ablation smoke OK"
