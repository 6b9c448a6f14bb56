#!/usr/bin/env bash
# Distributed evaluation (issue 11): the evaluate stage of configs/smoke/clip_nih.toml (8 images per split: gallery
# 16, queries 8, embedded in batches of 3) run by 2 ranks (two `daug run` processes, Gloo on localhost; each embeds
# its shard, rank 0 gathers and writes) gives the tables of 1 process: tables.md and tables.csv identical (the
# printed precision), every metric within 1e-6. Everything upstream runs once, in one process, and the 2-rank run
# starts from a copy of that cache without evaluate's output. Args: DAUG_BINARY SOURCE_DIR WORK_DIR
set -euo pipefail
daug=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
source "$src/tests/pipeline/two_ranks.sh"
cfg="$src/configs/smoke/clip_nih.toml"
sets=(--set data.max_per_split=8 --set evaluate.batch_size=3)

dirs one
OMP_NUM_THREADS=1 "$daug" run "$cfg" "${sets[@]}" "${dirs[@]}" --stage train_classifier --stage train_diffusion \
  --stage heatmaps --stage train_clip --stage evaluate > "$work/one.txt" 2>&1 || fail "1 process" "$work/one.txt"
one=$(ls -d "$work"/one/cache/evaluate-*)
mkdir -p "$work/two/cache"
for d in "$work"/one/cache/*; do [ "$d" = "$one" ] || cp -r "$d" "$work/two/cache/"; done
dirs two
two_ranks two run "$cfg" "${sets[@]}" "${dirs[@]}" --stage evaluate
two="$work/two/cache/$(basename "$one")"
[ -f "$two/.complete" ] || fail "the evaluate stage is not complete after the 2-rank run" "$work/two.rank0.txt"
# No rank re-ran an upstream stage (rank 1 logs to rank1.log in the run directory).
for log in "$work/two.rank0.txt" "$work"/two/runs/*/rank1.log; do
  [ "$(grep -c "cached at" "$log")" -eq 4 ] || fail "expected the 4 upstream stages cached in $log" "$log"
done
# Each rank embedded its half.
for r in 0 1; do
  grep -q "rank $r/2 embeds 8 of the 16 gallery images and 4 of the 8 queries" "$work/two.rank0.txt" \
    "$work"/two/runs/*/rank1.log || fail "rank $r did not embed its shard" "$work/two.rank0.txt"
done
grep -q "mAP@5" "$two/tables.md" || fail "no mAP@5 table" "$two/tables.md"
# The tables name the checkpoint they evaluated, under each run's own cache directory.
for f in tables.md tables.csv; do
  diff <(sed "s#$work/one/#<work>/#g" "$one/$f") <(sed "s#$work/two/#<work>/#g" "$two/$f") \
    || fail "$f differs between 1 process and 2 ranks"
done
/usr/bin/python3 - "$one/metrics.json" "$two/metrics.json" <<'PY'
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a.keys() == b.keys(), (a.keys(), b.keys())
worst = 0.0
for k in a:
    for avg in ("Avg", "wAvg"):
        x, y = a[k][avg], b[k][avg]
        assert (x is None) == (y is None), (k, avg, x, y)
        if x is not None:
            worst = max(worst, abs(x - y))
assert worst <= 1e-6, f"metrics differ by {worst}"
print(f"metrics.json: {len(a)} metrics, largest difference {worst:.3g}")
PY
echo "distributed evaluate OK"
