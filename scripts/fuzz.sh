#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, -DDAUG_FUZZ=ON, build dir build-fuzz) and runs each for a fixed time from
# its committed seed corpus, one at a time at low priority. See fuzz/README.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 300 s, every target
#
# Per target it prints executions, exec/s, coverage and findings. A finding (crash, sanitizer report, timeout,
# out-of-memory, or an exception other than daug::Error) is saved as fuzz/crashes/<target>/<kind>-<sha1>; move it
# to fuzz/regressions/<target>/ once fixed so fuzz_replay_test keeps replaying it. Exit status: 1 if anything
# was found. New interesting inputs go to build-fuzz/fuzz/work/<target>/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=(clip_weights config csv dicom image npy safetensors tokenizer torch_pickle torch_save)
secs=${1:-300}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t'; known: ${ALL[*]}" >&2; exit 2; }
done

# clang and libFuzzer/sanitizer runtimes (Debian 12: libclang_rt.fuzzer in libclang-rt-14-dev); not in the normal
# setup: the default build and CI use g++ only.
./scripts/setup.sh clang libclang-rt-14-dev
B=${DAUG_FUZZ_BUILD_DIR:-build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAUG_FUZZ=ON \
  -DDAUG_BUILD_TESTS=OFF -DDAUG_BUILD_BENCHMARKS=OFF -DDAUG_BUILD_EXAMPLES=OFF > "$B.configure.log" 2>&1 ||
  { cat "$B.configure.log"; exit 1; }
nice -n 15 ninja -C "$B" -j "${DAUG_FUZZ_BUILD_JOBS:-2}" $(printf 'fuzz_%s ' "${targets[@]}")

# LibTorch is not instrumented; its one-time allocations are not leaks of ours.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
summary=()
found=0
for t in "${targets[@]}"; do
  work="$B/fuzz/work/$t" run="$B/fuzz/run/$t" crashes="fuzz/crashes/$t"
  mkdir -p "$work" "$run" "$crashes"
  dirs=("$PWD/$work" "$PWD/fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("$PWD/fuzz/regressions/$t")
  count() { find "$crashes" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l; }
  before=$(count)
  echo "== $t: ${secs} s"
  # -jobs=1: the run happens in a child process (log: $run/fuzz-0.log) that stops at its first finding.
  (cd "$run" && rm -f fuzz-0.log &&
   nice -n 15 "$OLDPWD/$B/fuzz/fuzz_$t" -jobs=1 -workers=1 -max_total_time="$secs" -timeout=30 \
     -rss_limit_mb=4096 -malloc_limit_mb=3072 -print_final_stats=1 \
     -artifact_prefix="$OLDPWD/$crashes/" "${dirs[@]}" > /dev/null 2>&1) || true
  log="$run/fuzz-0.log"
  # Final stats when the run ends normally; otherwise (a finding) the last status line.
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' ||
          grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' ||
         grep -o 'exec/s: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  corp=$(grep -o 'corp: [0-9]*/[0-9A-Za-z]*' "$log" | tail -1 || true)
  rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  new=$(( $(count) - before ))
  if [ "$new" -gt 0 ] || grep -q 'ERROR: \|FINDING\|==ERROR\|runtime error' "$log"; then
    found=1
    echo "   FINDING: see $log and $crashes/"
    grep -m3 'FINDING\|ERROR:\|runtime error' "$log" | sed 's/^/   /' || true
  fi
  line=$(printf '%-13s %5s s  execs %-9s exec/s %-5s %-19s %-16s rss %5s MB  findings %s' "$t" "$secs" \
         "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "${corp:-corp: ?}" "${rss:-?}" "$new")
  echo "   $line"
  summary+=("$line")
done
echo
echo "== summary ($(date -u +%FT%TZ))"
printf '%s\n' "${summary[@]}" | tee "$B/fuzz/summary.txt"
exit $found
