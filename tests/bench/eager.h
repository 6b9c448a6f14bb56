#pragma once
// What every benchmark shares: the device (DAUG_BENCH_DEVICE = cpu | cuda[:i], default cpu), the intra-op thread
// count (DAUG_BENCH_THREADS, default 1), bf16 support of this CPU, and the eager-PyTorch baseline
// (tests/bench/eager_baseline.py) run in the same session with the same shapes, threads and device, so that a
// benchmark reports `ratio_vs_eager` = eager seconds / daug seconds (> 1: daug is faster).
//   DAUG_BENCH_EAGER=0       skip the baseline (no ratio counters)
//   DAUG_BENCH_PYTHON=...    the interpreter (default /usr/bin/python3: Debian's python3-torch)
// Header-only on purpose: each benchmark is one executable (tests/bench/CMakeLists.txt).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>

#ifndef DAUG_BENCH_EAGER_SCRIPT
#error "DAUG_BENCH_EAGER_SCRIPT (the path of tests/bench/eager_baseline.py) is set by tests/bench/CMakeLists.txt"
#endif

namespace daug::bench {

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

inline at::Device device() { return at::Device(env_or("DAUG_BENCH_DEVICE", "cpu")); }

inline int threads() { return std::max(1, std::atoi(env_or("DAUG_BENCH_THREADS", "1").c_str())); }

/// Waits for queued device work (CUDA kernels are asynchronous; a host copy of one element synchronises).
inline void sync(const at::Tensor& t) {
  if (t.defined() && !t.is_cpu()) (void)t.reshape(-1).slice(0, 0, 1).cpu();
}

/// True when this CPU has bf16 arithmetic (AVX512-BF16 or AMX-BF16); without it bf16 on CPU is an emulation that
/// is slower than fp32, and the bf16 targets do not apply.
inline bool cpu_has_bf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0)
      return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
  return false;
}

struct EagerResult {
  double seconds = 0;      ///< wall, min per iteration
  double cpu_seconds = 0;  ///< process CPU time, min per iteration (robust to other load for 1-thread runs)
};

/// The eager baseline for `args` (e.g. "guided --preset tiny --batch 8"), min over its iterations; nullopt when
/// disabled or when the script fails (the reason goes to stderr). Memoised per args.
inline std::optional<EagerResult> eager_seconds(const std::string& args) {
  static std::map<std::string, std::optional<EagerResult>> cache;
  if (env_or("DAUG_BENCH_EAGER", "1") == "0") return std::nullopt;
  const std::string cmd = env_or("DAUG_BENCH_PYTHON", "/usr/bin/python3") + " " + DAUG_BENCH_EAGER_SCRIPT + " " +
                          args + " --threads " + std::to_string(threads()) + " --device " + device().str() + " 2>&1";
  auto it = cache.find(cmd);
  if (it != cache.end()) return it->second;
  std::optional<EagerResult> result;
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    while (fgets(buf, sizeof buf, p)) out += buf;
    const int rc = pclose(p);
    const auto pos = out.find(" seconds="), cpu = out.find(" cpu_seconds=");
    if (rc == 0 && pos != std::string::npos && cpu != std::string::npos)
      result = EagerResult{std::atof(out.c_str() + pos + 9), std::atof(out.c_str() + cpu + 13)};
  }
  if (!result) std::fprintf(stderr, "eager baseline failed: %s\n%s\n", cmd.c_str(), out.c_str());
  return cache[cmd] = result;
}

/// Times each iteration (min over iterations, as the baseline reports); call lap() at the end of an iteration.
class MinTimer {
 public:
  void start() {
    t0_ = std::chrono::steady_clock::now();
    c0_ = std::clock();
  }
  void lap() {
    const auto t = std::chrono::steady_clock::now();
    const std::clock_t c = std::clock();
    best_ = std::min(best_, std::chrono::duration<double>(t - t0_).count());
    best_cpu_ = std::min(best_cpu_, static_cast<double>(c - c0_) / CLOCKS_PER_SEC);
    t0_ = t;
    c0_ = c;
  }
  double best() const { return best_; }
  double best_cpu() const { return best_cpu_; }

 private:
  std::chrono::steady_clock::time_point t0_;
  std::clock_t c0_ = 0;
  double best_ = std::numeric_limits<double>::infinity();
  double best_cpu_ = std::numeric_limits<double>::infinity();
};

/// Adds eager_s, daug_s (wall, min per iteration), ratio_vs_eager (eager / daug, wall) and the same for process
/// CPU time (eager_cpu_s, daug_cpu_s, cpu_ratio_vs_eager: the fairer figure on a shared machine when both run one
/// thread; meaningless for the concurrent variants, which trade CPU time for wall time) for `args`.
inline void report_vs_eager(benchmark::State& state, const MinTimer& timer, const std::string& args) {
  state.counters["daug_s"] = timer.best();
  state.counters["daug_cpu_s"] = timer.best_cpu();
  const auto eager = eager_seconds(args);
  if (!eager) return;
  state.counters["eager_s"] = eager->seconds;
  state.counters["eager_cpu_s"] = eager->cpu_seconds;
  state.counters["ratio_vs_eager"] = eager->seconds / timer.best();
  state.counters["cpu_ratio_vs_eager"] = eager->cpu_seconds / timer.best_cpu();
}

}  // namespace daug::bench
