#!/usr/bin/env bash
# Smoke: the speed/quality trade-off of respaced sampling end to end (issue 12 item 4), as the instant twin of
# configs/cpu/synthetic_respacing.toml: `daug ablate` runs the sweep over generator.timestep_respacing
# (ddim2/4/10/20, 4 test images, tiny untrained models), then `daug compare-heatmaps --sweep` writes the table and
# the plot. Checks: every variant ran and reused the same trained models (timestep_respacing is sampling-only), each
# made its own heatmaps; the reference is ddim20 (the most steps, from effective.toml); every variant matched all 4
# images with a defined r; r of the reference with itself is 1; tradeoff.png is a PNG.
# Args: DAUG_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
daug=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"; cd "$work"
fail() { echo "FAIL: $1"; [ -n "${2:-}" ] && cat "$2"; exit 1; }
"$daug" ablate "$src/configs/smoke/respacing/synthetic_respacing.toml" --out "$work/sweep" \
  --set "run.runs_dir=\"$work/runs\"" --set "run.cache_dir=\"$work/cache\"" > "$work/ablate.txt" 2>&1 \
  || fail "daug ablate" "$work/ablate.txt"
for v in ddim2 ddim4 ddim10 ddim20; do
  grep -q "timestep_respacing='$v'\] | ok |" "$work/sweep/comparison.md" || fail "variant $v missing or failed" "$work/sweep/comparison.md"
done
# One training of each model for the four variants, four heatmap outputs.
for s in train_classifier train_diffusion heatmaps; do
  n=$(cat "$work"/runs/*/stages.txt | awk -v s="$s" '$1 == s { print $2 }' | sort -u | wc -l)
  want=1; [ "$s" = heatmaps ] && want=4
  [ "$n" -eq "$want" ] || fail "expected $want distinct [$s] output(s) over the variants, found $n" "$work/ablate.txt"
done
"$daug" compare-heatmaps --sweep "$work/sweep" > "$work/compare.txt" 2>&1 || fail "daug compare-heatmaps" "$work/compare.txt"
cat "$work/sweep/tradeoff.md"
grep -q "^Reference: \*\*ddim20\*\*.*the most sampling steps (20, from its effective.toml)" "$work/sweep/tradeoff.md" \
  || fail "the reference is not ddim20" "$work/sweep/tradeoff.md"
for v in ddim2 ddim4 ddim10; do
  grep -Eq "^\| $v \| [0-9]+ \| 4/4 \| [0-9.-]+ \| [0-9.-]+ \| [0-9.-]+ \| 0 \| [0-9.]+ \|" "$work/sweep/tradeoff.md" \
    || fail "row $v: expected 4/4 matched images, a defined r and a timing" "$work/sweep/tradeoff.md"
done
grep -q "^| ddim20 (ref) | 20 | 4/4 | 1.0000 | 1.0000 | 1.0000 | 0 |" "$work/sweep/tradeoff.md" \
  || fail "the reference row must have r = 1" "$work/sweep/tradeoff.md"
head -c 8 "$work/sweep/tradeoff.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" || fail "tradeoff.png is not a PNG"
echo "respacing trade-off smoke OK"
