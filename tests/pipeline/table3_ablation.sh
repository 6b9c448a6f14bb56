#!/usr/bin/env bash
# Smoke: the CPU Table-3 ablation set (configs/ablations/table3/cpu_*.toml) shrunk to a few images and steps runs
# through `daug ablate` and writes ONE comparison table with the three variants side by side; the heatmap stages
# are shared by the variants through the cache. Args: DAUG_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
daug=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
small=(--set data.max_per_split=4 --set train_classifier.epochs=0 --set train_classifier.steps=2
       --set train_diffusion.steps=2 --set train_clip.max_steps=2 --set train_clip.batch_size=4 --set heatmaps.overlays=1
       --set "run.runs_dir=\"$work/runs\"" --set "run.cache_dir=\"$work/cache\"")
cd "$work"
"$daug" ablate "$src"/configs/ablations/table3/cpu_{clip_baseline,daug_clip,daug_hybrid}.toml "${small[@]}" \
  --out "$work/comparison" --columns map@5 --columns auc > "$work/out.txt" 2>&1 || { cat "$work/out.txt"; exit 1; }
cat "$work/comparison/comparison.md"
for v in cpu_clip_baseline cpu_daug_clip cpu_daug_hybrid; do
  grep -q "^| $v | ok |" "$work/comparison/comparison.md" || { echo "variant $v missing or failed"; exit 1; }
done
n=$(ls -d "$work"/cache/heatmaps-* | wc -l)
[ "$n" -eq 1 ] || { echo "expected the 2 DAug variants to share one heatmap stage output, found $n"; exit 1; }
echo "table3 ablation smoke OK"
