#!/usr/bin/env bash
# Smoke: the Table-3 ablation sets through `daug ablate`, as their instant twins (the paper variants with tiny
# sizes; tests/smoke checks that their wiring equals the originals'): the retrieval rows configs/smoke/table3/
# {clip_baseline,daug_clip,daug_hybrid}.toml in one comparison table, then the classification (AUC) rows
# cls_{baseline,daug,hcontra,all}.toml in another; the heatmap stages are shared by all variants through the cache.
# Args: DAUG_BINARY SOURCE_DIR WORK_DIR
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
# Issue 12: each variant's paired bootstrap difference from clip_baseline, per test query, with its 95% CI.
for v in daug_clip daug_hybrid; do
  grep -qE "^\| evaluate\.r2i_map@5\.Avg \| $v \| [-+][0-9.]+ \| \[[-+][0-9.]+, [-+][0-9.]+\] \| [0-9]+ \|$" \
    "$work/comparison/comparison.md" || { echo "no paired bootstrap CI row for $v"; exit 1; }
done
grep -q "### Paired bootstrap: difference from clip_baseline" "$work/comparison/comparison.md" \
  || { echo "no paired bootstrap table"; exit 1; }
# Table 3's AUC rows are the separate released classification runs (cls_*: w = 0 / 0.7, channel or not): a second
# ablation set over the same cache, so its channel variants reuse the same heatmaps.
cls=(cls_baseline cls_daug cls_hcontra cls_all)
configs=(); for v in "${cls[@]}"; do configs+=("$src/configs/smoke/table3/$v.toml"); done
"$daug" ablate "${configs[@]}" --out "$work/comparison_cls" \
  --set "run.runs_dir=\"$work/runs\"" --set "run.cache_dir=\"$work/cache\"" \
  --columns auc > "$work/out_cls.txt" 2>&1 || { cat "$work/out_cls.txt"; exit 1; }
cat "$work/comparison_cls/comparison.md"
for v in "${cls[@]}"; do
  grep -q "^| $v | ok |" "$work/comparison_cls/comparison.md" || { echo "variant $v missing or failed"; exit 1; }
done
grep -q "evaluate.auc_exact.Avg" "$work/comparison_cls/comparison.md" || { echo "no auc_exact column"; exit 1; }
n=$(ls -d "$work"/cache/heatmaps-* | wc -l)
[ "$n" -eq 1 ] || { echo "expected all DAug channel variants to share one heatmap stage output, found $n"; exit 1; }
echo "table3 ablation smoke OK"
