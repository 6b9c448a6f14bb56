#!/usr/bin/env bash
# Smoke: configs/smoke/clip_nih.toml (heatmaps -> train_clip -> evaluate -> report) from an empty cache; the
# evaluate tables are printed, metrics.json exists, the report renders in headless Chromium with a visible training-
# curves figure per training stage (tests/report/curves_check.py), and a second run is served from the cache.
# Args: DAUG_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
daug=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
sets=(--set "run.runs_dir=\"$work/runs\"" --set "run.cache_dir=\"$work/cache\"")
"$daug" run "$src/configs/smoke/clip_nih.toml" "${sets[@]}" > "$work/out.txt" 2>&1 || { cat "$work/out.txt"; exit 1; }
grep -q "mAP@5" "$work/out.txt" || { echo "no mAP@5 table in the output"; cat "$work/out.txt"; exit 1; }
grep -q "AUC" "$work/out.txt" || { echo "no AUC table in the output"; exit 1; }
ls "$work"/cache/evaluate-*/metrics.json > /dev/null
report=$(ls "$work"/cache/report-*/report.html)
"$src/tests/report/render_check.sh" "$report" "$work/report.png" > "$work/render.txt" 2>&1 \
  || { cat "$work/render.txt"; exit 1; }
python3 "$src/tests/report/curves_check.py" "$report" "$work/curves" train_classifier train_diffusion train_clip \
  > "$work/curves.txt" 2>&1 || { cat "$work/curves.txt"; exit 1; }
# Same config again: every stage is a cache hit.
"$daug" run "$src/configs/smoke/clip_nih.toml" "${sets[@]}" > "$work/out2.txt" 2>&1 || { cat "$work/out2.txt"; exit 1; }
hits=$(grep -c "cached at" "$work/out2.txt" || true)
[ "$hits" -eq 6 ] || { echo "expected 6 cached stages on the re-run, got $hits"; cat "$work/out2.txt"; exit 1; }
echo "clip smoke OK: $report"
