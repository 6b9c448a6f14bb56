// VectorSearch throughput and recall: the `exact` plugin (built from TOML through the plugin loader, as `daug query`
// builds [search]) and the `faiss` plugin's FaissSearch (flat; ivf_flat swept over nprobe and hnsw over ef_search,
// each index built once and its search parameter changed with set_search_params()), on DAUG_BENCH_SEARCH_ROWS
// (default 100000) synthetic 512-d L2-normalised vectors from a Gaussian mixture (100 unit centres + N(0, 0.03²) per
// coordinate, then normalised; fixed seeds) and DAUG_BENCH_SEARCH_QUERIES (default 300) queries from the same
// mixture, k = 10. One iteration searches every query in one search() call.
// Counters: queries_per_s (best iteration), recall_at_10 against the exact plugin's result, speed_vs_exact (this
// index's queries/s over the exact plugin's at its defaults, in the same session), the same two in process CPU
// time (queries_per_cpu_s, cpu_speed_vs_exact: the fairer figures on a shared machine at one thread), build_s
// (add(): copy, k-means training or graph building); BM_Exact also ratio_vs_eager against torch.mm + topk (tests/bench/eager_baseline.py
// search, same shapes and threads).
//   DAUG_BENCH_THREADS=1 build/bench/search_bench [--benchmark_filter=...]
// Index parameters: ivf_flat nlist = 1024 (≈ 3.2·√N) trained on 40000 sampled rows; hnsw M = 16, ef_construction
// = 40 (FAISS's default; the plugin's defaults, 32/200, take several times longer to build on a CPU box).
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/log.h>
#include <daug/vector_search.h>

#include "../support/search_reference.h"
#include "eager.h"
#include "faiss_search.h"

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace {

using daug::testing::RowMatrix;

daug::core::PluginLoader& loader() {
  static auto* l = [] {  // leaked on purpose: plugin libraries are never unloaded (plugin_loader.h)
    auto* p = new daug::core::PluginLoader({DAUG_BENCH_PLUGIN_DIR});
    p->load_all();
    return p;
  }();
  return *l;
}

int64_t env_int(const char* name, int64_t fallback) {
  return std::atoll(daug::bench::env_or(name, std::to_string(fallback)).c_str());
}

constexpr int64_t kDim = 512, kClusters = 100, kK = 10;
constexpr float kSpread = 0.03f;

const RowMatrix& database() {
  static const RowMatrix m =
      daug::testing::clustered_unit_rows(env_int("DAUG_BENCH_SEARCH_ROWS", 100000), kDim, kClusters, kSpread, 1);
  return m;
}
const RowMatrix& queries() {
  static const RowMatrix m =
      daug::testing::clustered_unit_rows(env_int("DAUG_BENCH_SEARCH_QUERIES", 300), kDim, kClusters, kSpread, 2);
  return m;
}

struct Built {
  std::unique_ptr<daug::core::Experiment> exp;  // owns a loader-built component
  std::shared_ptr<daug::VectorSearch> search;
  double build_s = 0;
};

double add_timed(daug::VectorSearch& s) {
  at::set_num_threads(daug::bench::threads());
  (void)database();  // generated outside the timing
  const auto t0 = std::chrono::steady_clock::now();
  s.add(database().view());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The [search] table `body` built through the plugin loader and filled with the database, once per body.
Built& from_toml(const std::string& body) {
  static std::map<std::string, Built> cache;
  auto it = cache.find(body);
  if (it != cache.end()) return it->second;
  daug::log::set_level(daug::log::Level::warn);
  const auto root = std::filesystem::temp_directory_path() / "daug_search_bench";
  std::filesystem::create_directories(root);
  auto doc =
      daug::core::parse_config("schema_version = 1\n[run]\nseed = 0\n[search]\n" + body, "search_bench.toml", {}, root);
  Built b;
  b.exp = std::make_unique<daug::core::Experiment>(loader(), doc, root);
  b.search = b.exp->component<daug::VectorSearch>("search");
  b.build_s = add_timed(*b.search);
  return cache.emplace(body, std::move(b)).first->second;
}

/// A FaissSearch of `type` (options set by `set`), built once per name.
std::pair<daug::plugins::FaissSearch*, double> faiss(const std::string& name, daug::plugins::FaissIndexType type,
                                                     void (*set)(daug::plugins::FaissSearchOptions&)) {
  static std::map<std::string, std::pair<std::unique_ptr<daug::plugins::FaissSearch>, double>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    daug::plugins::FaissSearchOptions o;
    o.type = type;
    if (set) set(o);
    auto s = std::make_unique<daug::plugins::FaissSearch>(o, "search", 1);
    const double t = add_timed(*s);
    it = cache.emplace(name, std::make_pair(std::move(s), t)).first;
  }
  return {it->second.first.get(), it->second.second};
}

struct Reference {
  std::vector<daug::SearchHits> truth;
  double seconds = 0;  // exact search of every query at the plugin's defaults, best of 3
  double cpu_seconds = 0;
};

/// The exact plugin's hits (the recall reference) and its time, measured once per session.
const Reference& exact_reference() {
  static const Reference r = [] {
    Reference out;
    auto& e = from_toml("plugin = \"exact\"\n");
    daug::bench::MinTimer t;
    t.start();
    for (int i = 0; i < 3; ++i) {
      out.truth = e.search->search(queries().view(), kK);
      t.lap();
    }
    out.seconds = t.best();
    out.cpu_seconds = t.best_cpu();
    return out;
  }();
  return r;
}

void run(benchmark::State& state, daug::VectorSearch& s, double build_s, const std::string& label,
         const std::string& eager_args = "") {
  const Reference& ref = exact_reference();
  at::set_num_threads(daug::bench::threads());
  std::vector<daug::SearchHits> hits;
  daug::bench::MinTimer timer;
  timer.start();
  for (auto _ : state) {
    hits = s.search(queries().view(), kK);
    timer.lap();
  }
  const double nq = static_cast<double>(queries().rows);
  state.counters["queries_per_s"] = nq / timer.best();
  state.counters["recall_at_10"] = daug::testing::recall(hits, ref.truth);
  state.counters["speed_vs_exact"] = ref.seconds / timer.best();
  // In process CPU time: the fairer figures on a shared machine at one thread (meaningless with several).
  state.counters["queries_per_cpu_s"] = nq / timer.best_cpu();
  state.counters["cpu_speed_vs_exact"] = ref.cpu_seconds / timer.best_cpu();
  state.counters["build_s"] = build_s;
  state.counters["threads"] = daug::bench::threads();
  state.SetLabel(fmt::format("{} rows={} queries={} dim={}", label, database().rows, queries().rows, kDim));
  if (!eager_args.empty()) daug::bench::report_vs_eager(state, timer, eager_args);
}

void BM_Exact(benchmark::State& state) {
  const int64_t block = state.range(0);
  Built& b = from_toml(fmt::format("plugin = \"exact\"\nblock_rows = {}\n", block));
  run(state, *b.search, b.build_s, fmt::format("exact block_rows={}", block),
      fmt::format("search --rows {} --dim {} --batch {} --k {} --iters 3", database().rows, kDim, queries().rows, kK));
}

void BM_FaissFlat(benchmark::State& state) {
  auto [s, t] = faiss("flat", daug::plugins::FaissIndexType::flat, nullptr);
  run(state, *s, t, "faiss flat");
}

void BM_FaissIvfFlat(benchmark::State& state) {
  auto [s, t] = faiss("ivf", daug::plugins::FaissIndexType::ivf_flat, [](daug::plugins::FaissSearchOptions& o) {
    o.nlist = 1024;
    o.train_rows = std::min<int64_t>(40000, database().rows);
    o.seed = 1;
  });
  s->set_search_params(state.range(0), std::nullopt);
  run(state, *s, t, fmt::format("faiss ivf_flat nlist=1024 nprobe={}", state.range(0)));
}

void BM_FaissHnsw(benchmark::State& state) {
  auto [s, t] = faiss("hnsw", daug::plugins::FaissIndexType::hnsw, [](daug::plugins::FaissSearchOptions& o) {
    o.M = 16;
    o.ef_construction = 40;
    o.seed = 1;
  });
  s->set_search_params(std::nullopt, state.range(0));
  run(state, *s, t, fmt::format("faiss hnsw M=16 ef_construction=40 ef_search={}", state.range(0)));
}

}  // namespace

BENCHMARK(BM_Exact)
    ->Arg(1024)
    ->Arg(4096)
    ->Arg(16384)
    ->Arg(65536)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK(BM_FaissFlat)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_FaissIvfFlat)
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(5);
BENCHMARK(BM_FaissHnsw)
    ->Arg(16)
    ->Arg(32)
    ->Arg(64)
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(5);
