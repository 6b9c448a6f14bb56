#!/usr/bin/env bash
# daug on a GPU machine with PyTorch but no package registry (the device tool's nvidia-h200: python3 = torch
# 2.11.0+cu130, nvcc 13.0, pip cmake + ninja): builds daug against PyTorch's LibTorch with the Debian libraries
# carried as .debs/ (scripts/gpu_fetch_debs.sh, run on a Debian 12 machine first), then checks it on CUDA.
#
#   first call : bash scripts/gpu_check.sh                     device tool: carry [".debs"], timeout_s 560
#   warm rerun : PHASES=smoke,perf BUDGET=200 bash scripts/gpu_check.sh     (build-gpu/ is kept while warm)
#   here       : GPU_CHECK_DRY=1 scripts/gpu_check.sh          Debian's CPU LibTorch, sysroot from .debs/: runs
#                env, sysroot, configure and preflight (BUILD=1 also builds, BUILD_TARGETS="daug" only that,
#                and runs `daug version`)
#
# Phases (PHASES, comma-separated; each is skipped when less than its minimum of BUDGET seconds is left):
#   env        GPU, torch, compilers; LibTorch's bundled headers         sysroot   unpack .debs/ into tmp/gpu-sysroot
#   configure  CMake against torch.utils.cmake_prefix_path + sysroot     preflight which fmt/spdlog headers a TU sees
#   build      ninja -j$(nproc)                                          version   daug version, plugins list
#   cudatest   DAUG_TEST_DEVICE=cuda ctest -L cuda, the start-up check   smoke     smoke pipelines on CUDA fp32/bf16/fp16
#   perf       512² ddim100 heatmap s/image fp32 vs bf16, nvidia-smi trace
#   bench      every built *_bench with DAUG_BENCH_DEVICE=cuda          ctest     the CPU suite on this LibTorch
#   dist       ctest -L distributed; the smoke heatmap config as 2 ranks on cuda (backend auto, then gloo)
# Results: at most 8 files in $OUT (the device tool's limit): summary.txt build.log cuda.log perf.log gpu_util.csv
# bench.txt dist.log ctest.log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
T0=$(date +%s)
DRY=${GPU_CHECK_DRY:-0}
BUDGET=${BUDGET:-520}
if [ "$DRY" = 1 ]; then
  PHASES=${PHASES:-env,sysroot,configure,preflight${BUILD:+,build,version}}
else
  PHASES=${PHASES:-env,sysroot,configure,preflight,build,version,cudatest,smoke,perf,bench,dist,ctest}
fi
O=${OUT:-$ROOT/tmp/gpu-out}
mkdir -p "$O" "$ROOT/tmp"
SUMMARY=$O/summary.txt
SR=${SYSROOT:-$ROOT/tmp/gpu-sysroot}
B=${BUILD_DIR:-$ROOT/build-gpu}
W=$ROOT/tmp/gpu-work
J=$(nproc)

# ---- precision of the smoke/perf runs ------------------------------------------------------------------------------
# run.precision: --set run.precision=fp32|bf16|fp16 (training and sampling of every model-running stage)
# heatmaps.precision: --set heatmaps.precision=... (sampling only: the trained fp32 models are reused from the cache)
PRECISION_KEY=${PRECISION_KEY:-heatmaps.precision}
precision_set() {  # precision_set fp32|bf16|fp16 -> the --set arguments for that precision
  case "$PRECISION_KEY:$1" in
    heatmaps.precision:*) echo "--set heatmaps.precision=\"$1\"" ;;
    run.precision:*) echo "--set run.precision=\"$1\"" ;;
    *) echo "precision_set: unknown PRECISION_KEY '$PRECISION_KEY'" >&2; return 1 ;;
  esac
}
# -------------------------------------------------------------------------------------------------------------------

say() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }
want() { [[ ",$PHASES," == *",$1,"* ]]; }
phase() {  # phase NAME MIN_SECONDS_LEFT LOG: runs p_NAME with the time left as its timeout, output into $O/LOG
  local name=$1 min=$2 log=$O/$3 t rc
  want "$name" || return 0
  if [ "$(left)" -lt "$min" ]; then
    say "SKIP $name: $(left)s left < ${min}s"
    return 0
  fi
  t=$(date +%s)
  echo "===== $name =====" >>"$log"
  timeout --kill-after=10 "$(left)" bash -c "p_$name" >>"$log" 2>&1
  rc=$?
  say "$name rc=$rc $(($(date +%s) - t))s -> $3"
  return $rc
}

# ---- environment ----------------------------------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  PY=/usr/bin/python3                       # Debian: no pip torch; LibTorch from /usr
  TORCH_CMAKE=/usr/lib/x86_64-linux-gnu/cmake
  TORCH_LIB=/usr/lib/x86_64-linux-gnu
  NV_LIBS=""
  NVCC=""
else
  PY=$(command -v python3)
  TORCH_CMAKE=$($PY -c 'import torch;print(torch.utils.cmake_prefix_path)')
  TORCH_LIB=$($PY -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
  # libtorch_cuda's NEEDED chain (cuBLAS, cuDNN, NCCL ...) lives in the pip nvidia-* packages.
  NV_LIBS=$($PY -c 'import glob,os,torch;sp=os.path.dirname(os.path.dirname(torch.__file__));print(":".join(sorted({os.path.dirname(p) for p in glob.glob(sp+"/nvidia/**/lib*.so*",recursive=True)})))')
  NVCC=$(command -v nvcc || ls -1 /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1)
  if [ -n "$NVCC" ]; then
    export CUDA_HOME=${CUDA_HOME:-${NVCC%/bin/nvcc}}
    export PATH=$CUDA_HOME/bin:$PATH
  fi
fi
SR_LIB=$SR/usr/lib/x86_64-linux-gnu
# Run-time library path of the built programs: the sysroot's Debian libraries (fmt 9, spdlog, ICU 72, ...),
# LibTorch and its CUDA libraries. Only for daug's own programs: compilers and python keep the system's.
RUN_LD=$SR_LIB:$TORCH_LIB${NV_LIBS:+:$NV_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PY TORCH_CMAKE TORCH_LIB NV_LIBS NVCC SR SR_LIB RUN_LD B W J O ROOT DRY PRECISION_KEY
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
export -f precision_set
rl() { LD_LIBRARY_PATH=$RUN_LD "$@"; }
export -f rl

p_env() {
  date -u
  if [ "$DRY" = 1 ]; then echo "GPU_CHECK_DRY=1: Debian's CPU LibTorch, no GPU"; else nvidia-smi -L; nvidia-smi \
    --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; fi
  $PY -c 'import torch;print("torch",torch.__version__,"cuda",torch.version.cuda,"cxx11abi",torch._C._GLIBCXX_USE_CXX11_ABI,
"gpu",torch.cuda.get_device_name(0) if torch.cuda.is_available() else None);print(torch.__config__.show())' 2>&1
  echo "torch cmake prefix: $TORCH_CMAKE"
  for t in g++ cmake ninja $NVCC; do echo "== $t: $($t --version 2>&1 | head -1)"; done
  ldd --version | head -1
  if [ "$DRY" = 1 ]; then inc=/usr/include; else inc=$(dirname "$TORCH_LIB")/include; fi
  echo "LibTorch include dir $inc holds: $(find "$inc" -mindepth 1 -maxdepth 1 -printf '%f ' | head -c 600)"
  grep -h 'define FMT_VERSION' "$inc/fmt/core.h" "$inc/fmt/base.h" 2>/dev/null | head -1 | sed 's/^/LibTorch bundles fmt: /'
  command -v dpkg-deb >/dev/null || echo "no dpkg-deb: the sysroot phase falls back to ar + tar"
}
p_sysroot() {
  rm -rf "$SR" && mkdir -p "$SR"
  if [ -f .debs/sysroot.tar.xz ]; then
    if command -v xz >/dev/null; then tar -C "$SR" -xJf .debs/sysroot.tar.xz
    else $PY -c 'import sys,tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .debs/sysroot.tar.xz "$SR"; fi
  else
    local f d
    for f in .debs/*.deb; do
      [ -f "$f" ] || { echo "no .debs/sysroot.tar.xz and no .debs/*.deb: run scripts/gpu_fetch_debs.sh first"; return 1; }
      if command -v dpkg-deb >/dev/null; then
        dpkg-deb -x "$f" "$SR"
      else
        d=$(mktemp -d)
        (cd "$d" && ar x "$ROOT/$f" && tar -xf data.tar.* -C "$SR")
        rm -rf "$d"
      fi
    done
  fi
  # Bookworm installs zlib1g into /lib (not /usr/lib), and zlib1g-dev's libz.so is an absolute link to
  # /lib/x86_64-linux-gnu/libz.so.1.2.13: fold /lib into /usr/lib and make every absolute link relative.
  if [ -d "$SR/lib/x86_64-linux-gnu" ]; then
    cp -a "$SR/lib/x86_64-linux-gnu/." "$SR_LIB/"
    rm -rf "$SR/lib/x86_64-linux-gnu"
  fi
  local l t
  while IFS= read -r l; do
    t=$(readlink "$l")
    case "$t" in
      /*) if [ -e "$SR/usr$t" ] || [ -e "$SR_LIB/$(basename "$t")" ]; then ln -sfn "$(basename "$t")" "$l"; else echo "dangling absolute link $l -> $t"; fi ;;
    esac
  done < <(find "$SR" -type l)
  find "$SR_LIB" -maxdepth 1 -xtype l -printf 'dangling: %p -> %l\n'
  ls -l "$SR_LIB/libz.so" "$SR_LIB/libfmt.so" 2>&1
  du -sh "$SR"
}
p_configure() {
  local cuda_args=() rpl
  [ -n "$NVCC" ] && cuda_args=(-DCMAKE_CUDA_COMPILER="$NVCC" -DDAUG_CUDA_ARCHITECTURES=90)
  # ld resolves the NEEDED chain of libtorch_cuda and of the sysroot libraries through -rpath-link, so that no
  # LD_LIBRARY_PATH has to reach the compilers.
  rpl="-Wl,-rpath-link,$SR_LIB:$TORCH_LIB${NV_LIBS:+:$NV_LIBS}"
  rm -rf "$B"
  # DAUG_DICOM=OFF: DCMTK and its chain (libtiff, libxml2 ...) are not in the sysroot; DICOM decoding is CPU-only.
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$SR/usr;$TORCH_CMAKE" \
    -DCCACHE_PROGRAM=CCACHE_PROGRAM-NOTFOUND -DDAUG_BUILD_EXAMPLES=OFF \
    -DDAUG_DICOM=OFF \
    -DCMAKE_EXE_LINKER_FLAGS="$rpl" -DCMAKE_SHARED_LINKER_FLAGS="$rpl" -DCMAKE_MODULE_LINKER_FLAGS="$rpl" \
    "${cuda_args[@]}" 2>&1 | tee "$W-configure.log" |
    grep -E 'daug:|Torch|CUDA|cuDNN|Caffe2|Boost|fmt|spdlog|ICU|PNG|JPEG|ZLIB|Warning|Error|error' | head -60
  [ -f "$B/build.ninja" ]
}
p_preflight() {  # compiles one TU with sdk.cpp's exact flags: which fmt/spdlog headers, versions, ABI
  cat >"$ROOT/tmp/gpu_preflight.cpp" <<'EOF'
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <boost/dll/shared_library.hpp>
static_assert(FMT_VERSION < 100000, "the fmt headers are not Debian's fmt 9, which daug links");
EOF
  local cmd
  cmd=$($PY - "$B/compile_commands.json" <<'EOF'
import json, sys
for e in json.load(open(sys.argv[1])):
    if e["file"].endswith("sdk/src/sdk.cpp"):
        print(e["command"]); break
EOF
)
  [ -n "$cmd" ] || { echo "no compile command for sdk/src/sdk.cpp"; return 1; }
  cmd=${cmd%% -c *}                      # drop "-c <source>",
  cmd=${cmd%% -o *}                      # the object file
  cmd=${cmd%% -MD *}                     # and the dependency-file flags (they come last in CMake's rule)
  cmd=${cmd/\/usr\/bin\/ccache /}
  echo "flags: $cmd" | cut -c1-2000
  local rc
  (cd "$B" && eval "$cmd -fsyntax-only -H $ROOT/tmp/gpu_preflight.cpp") >"$W-preflight.txt" 2>&1
  rc=$?
  grep -E '^\.+ .*/(fmt/(core|format|base)|spdlog/spdlog|torch/version)\.h$' "$W-preflight.txt" | head -6
  (cd "$B" && eval "$cmd -E -dM $ROOT/tmp/gpu_preflight.cpp") |
    grep -E '#define (FMT_VERSION|TORCH_VERSION|SPDLOG_VER_(MAJOR|MINOR)|_GLIBCXX_USE_CXX11_ABI) |#define __cplusplus'
  if [ $rc = 0 ]; then echo "preflight: compiles, with fmt 9 ahead of LibTorch's bundled fmt"; else
    grep -m 10 -E 'error' "$W-preflight.txt"; fi
  return $rc
}
p_build() {
  local rc
  # shellcheck disable=SC2086 # BUILD_TARGETS: a space-separated list of ninja targets (default: everything)
  nice ninja -C "$B" -j"$J" ${BUILD_TARGETS:-} >"$W-ninja.log" 2>&1
  rc=$?
  grep -E 'error|warning: .*deprecated' "$W-ninja.log" | head -40
  tail -n 30 "$W-ninja.log"
  return $rc
}
p_version() {
  rl "$B/bin/daug" version && rl "$B/bin/daug" plugins list | tail -n 30
  ldd "$B/bin/daug" | grep -E 'torch|c10|cudart|fmt|spdlog|boost|icu|not found'
  readelf -d "$B/bin/daug" | grep -E 'RUNPATH|RPATH'
}
p_cudatest() {
  rl env DAUG_TEST_DEVICE=cuda ctest --test-dir "$B" -L cuda --output-on-failure --timeout 300 2>&1 | tail -n 80
  rl ctest --test-dir "$B" -R 'LoadedLibTorch|cli\.version|RangeChecks.Cuda' --output-on-failure 2>&1 | tail -n 20
}
p_smoke() {  # the smoke pipelines on CUDA; heatmaps in fp32, bf16, fp16 compared with each other
  local D=$B/bin/daug p out
  rm -rf "$W" && mkdir -p "$W"
  for p in fp32 bf16 fp16; do
    # shellcheck disable=SC2046 # precision_set prints separate words on purpose
    rl "$D" run configs/smoke/heatmaps_nih.toml --set run.device=cuda $(precision_set $p) \
      --set "run.runs_dir=\"$W/runs\"" --set "run.cache_dir=\"$W/cache\"" >"$W/hm_$p.txt" 2>&1
    echo "heatmaps smoke cuda $p rc=$? $(grep -E 'images/s' "$W/hm_$p.txt" | tail -1 | cut -c1-200)"
    grep -iE 'error|refus' "$W/hm_$p.txt" | head -5
  done
  out=$(rl "$D" run configs/smoke/clip_nih.toml --set run.device=cuda --set "run.runs_dir=\"$W/runs\"" \
    --set "run.cache_dir=\"$W/cache\"" 2>&1)
  echo "clip smoke cuda rc=$?"
  echo "$out" | grep -E 'mAP|AUC|error' | head -6
  $PY - "$W" <<'EOF'
import glob, os, re, sys
import numpy as np
w = sys.argv[1]
def heatmaps(p):
    text = open(f"{w}/hm_{p}.txt").read()
    m = re.search(r"run directory: (\S+)", text)
    if not m:
        return None
    stages = dict(l.split(" ", 1) for l in open(os.path.join(m.group(1), "stages.txt")).read().splitlines() if l)
    return stages["heatmaps"].strip()
ref = heatmaps("fp32")
files = sorted(glob.glob(f"{ref}/*.npy")) if ref else []
print(f"fp32 heatmaps: {len(files)} in {ref}")
for p in ("bf16", "fp16"):
    d = heatmaps(p)
    if not d:
        print(f"{p}: no run"); continue
    diffs, cors = [], []
    for f in files:
        a = np.load(f).ravel().astype(np.float64); b = np.load(os.path.join(d, os.path.basename(f))).ravel()
        diffs.append(np.abs(a - b).max()); cors.append(np.corrcoef(a, b)[0, 1])
    print(f"heatmaps {p} vs fp32: n={len(files)} max|diff|={max(diffs):.3e} mean max|diff|={np.mean(diffs):.3e} "
          f"min Pearson r={min(cors):.6f}")
EOF
}
p_perf() {  # paper-size sampling cost with untrained weights (the cost does not depend on them)
  local D=$B/bin/daug p smi
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -lms 500 >"$O/gpu_util.csv" &
  smi=$!
  for p in fp32 bf16; do
    echo "--- 512² ddim100 heatmaps, 16 images, batch 8, $p ($(date -u +%T))"
    # shellcheck disable=SC2046
    rl "$D" run configs/paper/diffusion_512.toml --set 'run.stages=["heatmaps"]' \
      --set 'heatmaps.diffusion_stage=""' --set 'heatmaps.classifier_stage=""' --set heatmaps.limit=16 \
      --set heatmaps.batch_size=8 --set heatmaps.overlays=0 --set 'generator.timestep_respacing="ddim100"' \
      $(precision_set $p) --set "run.runs_dir=\"$W/runs512\"" --set "run.cache_dir=\"$W/c512_$p\"" 2>&1 |
      grep -E 'images/s|s/image|rror|out of memory' | cut -c1-400
    echo "rc=${PIPESTATUS[0]} ($(date -u +%T))"
  done
  kill $smi 2>/dev/null
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv
}
p_bench() {  # every benchmark binary that exists, on CUDA; each bounded in time
  local b
  for b in $(find "$B" -maxdepth 3 -type f -name '*_bench' -perm -u+x | sort); do
    echo "--- $(basename "$b") ($(date -u +%T))"
    rl env DAUG_BENCH_DEVICE=cuda timeout 120 "$b" --benchmark_min_time=1 2>&1 | grep -vE '^\*\*\*|^-+$' | tail -n 25
  done
}
p_dist() {  # distributed launches on this machine: 2 ranks on the GPU (Gloo; NCCL when built with it) and on CPUs
  local D=$B/bin/daug
  rl env OMP_NUM_THREADS=1 ctest --test-dir "$B" -L distributed --timeout 300 2>&1 | tail -n 15
  for be in auto gloo; do
    echo "--- smoke heatmaps config, 2 ranks on cuda, backend $be ($(date -u +%T))"
    rl "$D" run --nproc 2 --timeout 120 configs/smoke/heatmaps_nih.toml --set run.device=\"cuda\" \
      --set "run.backend=\"$be\"" --set "run.runs_dir=\"$W/runs_dist\"" --set "run.cache_dir=\"$W/c_dist_$be\"" 2>&1 |
      grep -E 'distributed:|images/s|steps/s|rror|rank' | cut -c1-300 | tail -n 20
    echo "rc=${PIPESTATUS[0]} ($(date -u +%T))"
  done
}
p_ctest() {  # the CPU suite on this LibTorch (chromium and the install test are not there)
  rl env OMP_NUM_THREADS=1 ctest --test-dir "$B" -j"$J" --timeout 300 --output-on-failure \
    -E '^(smoke\.clip_report|examples\..*|report\..*)$' 2>&1 | tail -n 60
}
export -f p_env p_sysroot p_configure p_preflight p_build p_version p_cudatest p_smoke p_perf p_bench p_dist p_ctest

say "gpu_check: PHASES=$PHASES BUDGET=${BUDGET}s DRY=$DRY PRECISION_KEY=$PRECISION_KEY"
phase env 5 build.log
phase sysroot 20 build.log || { say "sysroot failed: stopping"; exit 1; }
phase configure 40 build.log || { say "configure failed: stopping"; exit 1; }
phase preflight 10 build.log
phase build 120 build.log || { say "build failed: stopping"; exit 1; }
phase version 5 build.log
phase cudatest 60 cuda.log
phase smoke 90 cuda.log
phase perf 90 perf.log
phase bench 60 bench.txt
phase dist 60 dist.log
phase ctest 90 ctest.log
say "done; files: $(ls "$O" | tr '\n' ' ')"
