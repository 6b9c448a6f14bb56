#!/usr/bin/env bash
# Distributed launch vs threads on one machine (issue 11's benchmark): 2 processes × 1 thread (a 2-rank launch with
# the torchrun environment, Gloo on localhost) against 1 process × 2 threads, measured in the same session, for
#   - a training step: configs/smoke/heatmaps_nih.toml's train_diffusion (tiny 32² UNet), batch 8 (4 per rank),
#     steps/s from losses.csv (elapsed_s between the first and the last logged step: no start-up);
#   - heatmaps: the same config's heatmaps stage (ddim10, L = 500) on 3 × DAUG_BENCH_IMAGES NIH-sample images, batch
#     8, images/s from its metrics.json (the translate loop; on 2 ranks all images over the slowest rank's seconds).
# Prints both figures and ratio = (2 processes × 1 thread) / (1 process × 2 threads): > 1 = the 2-rank launch is
# faster. 1 process × 1 thread is printed beside them as the reference of one core. The load average is printed
# before and after: on a shared machine say so with the figures.
#   scripts/bench_dist.sh
# DAUG_BENCH_REPEAT=R (default 3) runs every variant R times, interleaved, and prints the median of each figure (on a
# shared machine single runs vary by several times).
# Environment: DAUG_BENCH_PARTS ("train heatmaps", the default, or one of them), DAUG_BENCH_BUILD_DIR (default
# build-main), DAUG_BENCH_STEPS (training steps, default 30), DAUG_BENCH_IMAGES (images per split, default 16),
# DAUG_BENCH_WORK (scratch folder, default a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
B=${DAUG_BENCH_BUILD_DIR:-build-main}
parts=${DAUG_BENCH_PARTS:-train heatmaps}
steps=${DAUG_BENCH_STEPS:-30}
repeat=${DAUG_BENCH_REPEAT:-3}
per_split=${DAUG_BENCH_IMAGES:-16}
work=${DAUG_BENCH_WORK:-$(mktemp -d /tmp/daug_bench_dist.XXXXXX)}
mkdir -p "$work"
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release > "$B.bench-configure.log" 2>&1 || { cat "$B.bench-configure.log"; exit 1; }
nice ninja -C "$B" -j "${DAUG_BENCH_BUILD_JOBS:-2}" daug source_nih generator_ddpm classifier_adm guidance_softmax \
  composer_absdiff_minmax stage_train_classifier stage_train_diffusion stage_heatmaps > "$B.bench-build.log" 2>&1 \
  || { tail -n 30 "$B.bench-build.log"; exit 1; }
daug=$src/$B/bin/daug
[ -x "$daug" ] || daug=$(find "$src/$B" -name daug -type f -perm -u+x | head -n 1)
DAUG_RANK_TIMEOUT=${DAUG_RANK_TIMEOUT:-1800}
source "$src/tests/pipeline/two_ranks.sh"
cfg="$src/configs/smoke/heatmaps_nih.toml"
sets=(--set data.max_per_split="$per_split" --set train_diffusion.steps="$steps" --set train_diffusion.batch_size=8
      --set train_diffusion.checkpoint_every="$steps" --set heatmaps.batch_size=8)
dirs() { dirs=(--set "run.runs_dir=\"$work/$1/runs\"" --set "run.cache_dir=\"$work/$1/cache\""); }
one_process() {  # NAME THREADS ARGS...: 1 process
  local name=$1 threads=$2; shift 2
  OMP_NUM_THREADS=$threads "$daug" "$@" --set run.threads="$threads" > "$work/$name.txt" 2>&1 \
    || { tail -n 40 "$work/$name.txt"; exit 1; }
}
steps_per_s() {  # losses.csv of the train_diffusion stage under cache $1
  /usr/bin/python3 - "$(ls "$1"/train_diffusion-*/losses.csv)" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
a, b = rows[0], rows[-1]
print(f"{(int(b['step']) - int(a['step'])) / (float(b['elapsed_s']) - float(a['elapsed_s'])):.4f}")
PY
}
images_per_s() { /usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["images_per_s"]; print(f"{r:.4f}")' \
  "$(ls "$1"/heatmaps-*/metrics.json)"; }
median() { /usr/bin/python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.4f}")' "$@"; }
ratio() { /usr/bin/python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}")' "$1" "$2"; }
echo "bench_dist: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg); work: $work"

# Training step.
if [[ " $parts " == *" train "* ]]; then
  t0s=(); t1s=(); t2s=()
  for r in $(seq "$repeat"); do
    dirs train1_$r; one_process train1_$r 2 run "$cfg" "${sets[@]}" "${dirs[@]}" --stage train_diffusion
    dirs train2_$r; two_ranks train2_$r run "$cfg" "${sets[@]}" "${dirs[@]}" --set run.threads=1 --stage train_diffusion
    dirs train0_$r; one_process train0_$r 1 run "$cfg" "${sets[@]}" "${dirs[@]}" --stage train_diffusion
    t1s+=("$(steps_per_s "$work/train1_$r/cache")"); t2s+=("$(steps_per_s "$work/train2_$r/cache")")
    t0s+=("$(steps_per_s "$work/train0_$r/cache")")
    echo "run $r: train_diffusion steps/s: 1x2 ${t1s[-1]}, 2x1 ${t2s[-1]}, 1x1 ${t0s[-1]}"
  done
  t1=$(median "${t1s[@]}"); t2=$(median "${t2s[@]}"); t0=$(median "${t0s[@]}")
fi

# Heatmaps: the classifier and the diffusion model trained once, both runs start from copies of that cache.
if [[ " $parts " == *" heatmaps "* ]]; then
  dirs weights; one_process weights 1 run "$cfg" "${sets[@]}" "${dirs[@]}" --stage train_classifier --stage train_diffusion
  h0s=(); h1s=(); h2s=(); same=yes
  for r in $(seq "$repeat"); do
    for d in heat0_$r heat1_$r heat2_$r; do mkdir -p "$work/$d"; cp -r "$work/weights/cache" "$work/$d/cache"; done
    dirs heat1_$r; one_process heat1_$r 2 run "$cfg" "${sets[@]}" "${dirs[@]}" --stage heatmaps
    dirs heat2_$r; two_ranks heat2_$r run "$cfg" "${sets[@]}" "${dirs[@]}" --set run.threads=1 --stage heatmaps
    dirs heat0_$r; one_process heat0_$r 1 run "$cfg" "${sets[@]}" "${dirs[@]}" --stage heatmaps
    h1s+=("$(images_per_s "$work/heat1_$r/cache")"); h2s+=("$(images_per_s "$work/heat2_$r/cache")")
    h0s+=("$(images_per_s "$work/heat0_$r/cache")")
    echo "run $r: heatmaps images/s: 1x2 ${h1s[-1]}, 2x1 ${h2s[-1]}, 1x1 ${h0s[-1]}"
    for f in "$work"/heat0_$r/cache/heatmaps-*/*.npy; do
      cmp -s "$f" "$work/heat2_$r/cache/$(basename "$(dirname "$f")")/$(basename "$f")" || same=no
    done
  done
  h1=$(median "${h1s[@]}"); h2=$(median "${h2s[@]}"); h0=$(median "${h0s[@]}")
  n=$(($(grep -c . "$(ls "$work"/heat1_1/cache/heatmaps-*/index.csv)") - 1))
fi

echo "bench_dist: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "medians of $repeat runs:"
printf '%-44s %14s %14s %7s %14s\n' "benchmark" "1 proc x 2 thr" "2 proc x 1 thr" "ratio" "1 proc x 1 thr"
if [ -n "${t1:-}" ]; then
  printf '%-44s %14s %14s %7s %14s\n' "train_diffusion tiny32 b8, steps/s ($steps steps)" "$t1" "$t2" \
    "$(ratio "$t2" "$t1")" "$t0"
fi
if [ -n "${h1:-}" ]; then
  printf '%-44s %14s %14s %7s %14s\n' "heatmaps tiny32 ddim10 b8, images/s ($n)" "$h1" "$h2" "$(ratio "$h2" "$h1")" \
    "$h0"
  echo "heatmaps of 2 processes x 1 thread and 1 process x 1 thread byte-identical: $same"
fi
