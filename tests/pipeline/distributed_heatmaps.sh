#!/usr/bin/env bash
# Distributed heatmaps (issue 11): the heatmaps of configs/smoke/heatmaps_nih.toml (6 images per split, batches of 2:
# 9 groups) made by 2 ranks (two `daug run` processes, Gloo on localhost) equal those of 1 process byte for byte,
# overlays and index.csv included, and the stage is complete. Then, as a crashed run leaves it (no .complete), one of
# rank 1's heatmaps deleted, another cut short and one of rank 0's overlays cut: the next 2-rank run redoes exactly
# those groups and the files are byte-identical again. The training stages run once, in one process, and both runs
# start from copies of that cache, so both translate with the same weights. Args: DAUG_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
daug=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
source "$src/tests/pipeline/two_ranks.sh"
cfg="$src/configs/smoke/heatmaps_nih.toml"
sets=(--set data.max_per_split=6 --set heatmaps.batch_size=2)

dirs train
OMP_NUM_THREADS=1 "$daug" run "$cfg" "${sets[@]}" "${dirs[@]}" --stage train_classifier --stage train_diffusion \
  > "$work/train.txt" 2>&1 || fail "training (1 process)" "$work/train.txt"
for d in one two; do mkdir -p "$work/$d"; cp -r "$work/train/cache" "$work/$d/cache"; done
dirs one
OMP_NUM_THREADS=1 "$daug" run "$cfg" "${sets[@]}" "${dirs[@]}" > "$work/one.txt" 2>&1 || fail "1 process" "$work/one.txt"
dirs two
two_ranks two run "$cfg" "${sets[@]}" "${dirs[@]}"

heat() { ls -d "$work/$1"/cache/heatmaps-*; }
one=$(heat one); two=$(heat two)
[ "$(basename "$one")" = "$(basename "$two")" ] || fail "different heatmap cache keys: $one $two"
files() { (cd "$1" && find . \( -name '*.npy' -o -name '*.png' -o -name index.csv \) -printf '%P\n' | sort); }
compare() {  # compare WHAT: every heatmap, overlay and the index of the 2-rank run equal the 1-process ones
  [ "$(files "$one")" = "$(files "$two")" ] || fail "$1: other files"$'\n'"$(diff <(files "$one") <(files "$two"))"
  local n=0 f
  for f in $(files "$one"); do cmp "$one/$f" "$two/$f" || fail "$1: $f differs from the 1-process file"; n=$((n + 1)); done
  [ "$(grep -c '\.npy$' <(files "$two"))" -eq 18 ] || fail "$1: expected 18 heatmaps"$'\n'"$(files "$two")"
  [ -f "$two/.complete" ] || fail "$1: the heatmaps stage is not complete after the 2-rank run" "$work/two.rank0.txt"
  echo "$1: $n files identical to the 1-process run"
}
compare "2 ranks"
# Each rank translated its own groups: rank 0 groups 0,2,4,6,8 (10 images), rank 1 groups 1,3,5,7 (8 images).
grep -q '"ranks": 2, "per_rank": \[{"rank": 0, "made": 10, .*{"rank": 1, "made": 8,' "$two/metrics.json" \
  || fail "metrics.json does not show rank 0 making 10 heatmaps and rank 1 making 8" "$two/metrics.json"

# A crash before the stage completed: a heatmap of rank 1 (group 1 = images 2,3) deleted, one (group 3 = images 6,7)
# cut short, an overlay of rank 0 (group 0 = images 0,1) cut.
rm "$two/.complete"
row() { sed -n "$(($1 + 2))p" "$two/index.csv" | cut -d, -f3; }
rm "$two/$(row 2)"
head -c 100 "$one/$(row 7)" > "$two/$(row 7)"
png="overlays/$(row 1 | sed 's/\.npy$/.png/')"
head -c 50 "$one/$png" > "$two/$png"
dirs two
two_ranks resume run "$cfg" "${sets[@]}" "${dirs[@]}"
compare "resumed 2 ranks"
grep -q '"made": 3, "found_done": 15, "redone_bad": 2' "$two/metrics.json" \
  || fail "the resume should redo 3 images (1 missing, 2 bad)" "$two/metrics.json"
echo "distributed heatmaps OK"
