#!/usr/bin/env bash
# Builds the benchmarks and runs them against the eager-PyTorch baseline (tests/bench/eager_baseline.py, Debian's
# python3-torch 1.13, the same LibTorch/oneDNN/OpenBLAS) in the same session: every benchmark of the issue-10 targets
# prints ratio_vs_eager (eager seconds / daug seconds, > 1 = daug faster) and cpu_ratio_vs_eager. See
# tests/bench/README.md.
#
#   scripts/bench.sh [quick|full] [BENCH_FILTER]     quick (default): tiny models, the heatmaps stage, exact/IVF search
#                                                    full: + the released 256² models, ViT-B/32, checkpointing, HNSW
# Environment: DAUG_BENCH_THREADS (intra-op threads, default 1), DAUG_BENCH_DEVICE (cpu | cuda, default cpu),
# DAUG_BENCH_BUILD_DIR (default build-main), DAUG_BENCH_OUT (a folder for the JSON results, default none).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh python3-torch
mode=${1:-quick}
filter=${2:-}
B=${DAUG_BENCH_BUILD_DIR:-build-main}
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release > "$B.bench-configure.log" 2>&1 || { cat "$B.bench-configure.log"; exit 1; }
nice ninja -C "$B" -j "${DAUG_BENCH_BUILD_JOBS:-2}" diffusion_bench heatmaps_bench clip_train_bench checkpoint_bench \
  search_bench generator_ddpm classifier_adm guidance_softmax composer_absdiff_minmax source_nih stage_heatmaps \
  search_exact search_faiss
export DAUG_BENCH_THREADS=${DAUG_BENCH_THREADS:-1}
grep -qE ' (avx512_bf16|amx_bf16)' /proc/cpuinfo && echo "bench: this CPU has bf16" ||
  echo "bench: bf16: not supported here (no AVX512-BF16/AMX-BF16): the bf16 variants are skipped"
run() {  # run NAME FILTER
  local args=(--benchmark_filter="${filter:-$2}")
  [ -n "${DAUG_BENCH_OUT:-}" ] && mkdir -p "$DAUG_BENCH_OUT" &&
    args+=(--benchmark_out="$DAUG_BENCH_OUT/$1.json" --benchmark_out_format=json)
  echo "== $1 (threads $DAUG_BENCH_THREADS, device ${DAUG_BENCH_DEVICE:-cpu})"
  "$B/bench/$1" "${args[@]}"
}
if [ "$mode" = quick ]; then
  run diffusion_bench 'tiny'
  run heatmaps_bench '.'
  run clip_train_bench 'FinetuneStep/tiny'
  run checkpoint_bench 'tiny'
  run search_bench 'Exact/65536|FaissFlat|FaissIvfFlat'   # hnsw's 100k-row build takes minutes: full only
else
  run diffusion_bench '.'
  run heatmaps_bench '.'
  run clip_train_bench 'FinetuneStep'
  run checkpoint_bench '.'
  run search_bench '.'
fi
