// VectorSearch throughput and recall: the `exact` plugin and the `faiss` plugin (flat, ivf_flat at several nprobe,
// hnsw at several ef_search), built from TOML through the plugin loader as `daug query` builds [search], on
// DAUG_BENCH_SEARCH_ROWS (default 100000) synthetic 512-d L2-normalised vectors from a Gaussian mixture (100 unit
// centres + N(0, 0.03²) per coordinate, then normalised; fixed seeds) and DAUG_BENCH_SEARCH_QUERIES (default 300)
// queries from the same mixture, k = 10. One iteration searches every query in one search() call.
// Counters: queries_per_s (best iteration), recall_at_10 against the exact plugin's result, speed_vs_exact (this
// index's queries/s over exact's in the same session), build_s (add(): copy, k-means training or graph building);
// BM_Exact also ratio_vs_eager against torch.mm + topk (tests/bench/eager_baseline.py search, same shapes/threads).
//   DAUG_BENCH_THREADS=1 build/bench/search_bench [--benchmark_filter=...]
// Index parameters: ivf_flat nlist = 256 (≈ 0.8·√N: the mixture has 100 clusters) trained on 20000 sampled rows;
// hnsw M = 16, ef_construction = 80 (smaller than the plugin's defaults to keep the build short on a CPU box).
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/log.h>
#include <daug/vector_search.h>

#include "../support/search_reference.h"
#include "eager.h"

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

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

int64_t env_int(const char* name, int64_t fallback) { return std::atoll(daug::bench::env_or(name, std::to_string(fallback)).c_str()); }

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
  std::unique_ptr<daug::core::Experiment> exp;  // owns the component
  std::shared_ptr<daug::VectorSearch> search;
  double build_s = 0;
};

/// The [search] table `body` built and filled with the database, once per body.
Built& index(const std::string& body) {
  static std::map<std::string, Built> cache;
  auto it = cache.find(body);
  if (it != cache.end()) return it->second;
  at::set_num_threads(daug::bench::threads());
  daug::log::set_level(daug::log::Level::warn);
  const auto root = std::filesystem::temp_directory_path() / "daug_search_bench";
  std::filesystem::create_directories(root);
  auto doc = daug::core::parse_config("schema_version = 1\n[run]\nseed = 0\n[search]\n" + body, "search_bench.toml",
                                      {}, root);
  Built b;
  b.exp = std::make_unique<daug::core::Experiment>(loader(), doc, root);
  b.search = b.exp->component<daug::VectorSearch>("search");
  const auto t0 = std::chrono::steady_clock::now();
  b.search->add(database().view());
  b.build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return cache.emplace(body, std::move(b)).first->second;
}

struct Reference {
  std::vector<daug::SearchHits> truth;
  double seconds = 0;  // exact search of every query, best of 3
};

/// The exact plugin's hits (the recall reference) and its time, measured once per session.
const Reference& exact_reference() {
  static const Reference r = [] {
    Reference out;
    auto& e = index("plugin = \"exact\"\n");
    daug::bench::MinTimer t;
    t.start();
    for (int i = 0; i < 3; ++i) {
      out.truth = e.search->search(queries().view(), kK);
      t.lap();
    }
    out.seconds = t.best();
    return out;
  }();
  return r;
}

void run(benchmark::State& state, const std::string& body, const std::string& label) {
  const Reference& ref = exact_reference();
  Built& b = index(body);
  at::set_num_threads(daug::bench::threads());
  std::vector<daug::SearchHits> hits;
  daug::bench::MinTimer timer;
  timer.start();
  for (auto _ : state) {
    hits = b.search->search(queries().view(), kK);
    timer.lap();
  }
  const double nq = static_cast<double>(queries().rows);
  state.counters["queries_per_s"] = nq / timer.best();
  state.counters["recall_at_10"] = daug::testing::recall(hits, ref.truth);
  state.counters["speed_vs_exact"] = ref.seconds / timer.best();
  state.counters["build_s"] = b.build_s;
  state.counters["threads"] = daug::bench::threads();
  state.SetLabel(fmt::format("{} rows={} queries={} dim={}", label, database().rows, queries().rows, kDim));
  if (body.find("\"exact\"") != std::string::npos)
    daug::bench::report_vs_eager(state, timer,
                                 fmt::format("search --rows {} --dim {} --batch {} --k {} --iters 3", database().rows,
                                             kDim, queries().rows, kK));
}

void BM_Exact(benchmark::State& state) { run(state, "plugin = \"exact\"\n", "exact"); }

void BM_FaissFlat(benchmark::State& state) { run(state, "plugin = \"faiss\"\ntype = \"flat\"\n", "faiss flat"); }

void BM_FaissIvfFlat(benchmark::State& state) {
  const int64_t nprobe = state.range(0);
  // One index (nlist, training) per nprobe: the plugin takes nprobe at construction.
  run(state,
      fmt::format("plugin = \"faiss\"\ntype = \"ivf_flat\"\nnlist = 256\ntrain_rows = 20000\nseed = 1\nnprobe = {}\n",
                  nprobe),
      fmt::format("faiss ivf_flat nlist=256 nprobe={}", nprobe));
}

void BM_FaissHnsw(benchmark::State& state) {
  const int64_t ef = state.range(0);
  run(state,
      fmt::format("plugin = \"faiss\"\ntype = \"hnsw\"\nM = 16\nef_construction = 80\nseed = 1\nef_search = {}\n", ef),
      fmt::format("faiss hnsw M=16 ef_construction=80 ef_search={}", ef));
}

}  // namespace

BENCHMARK(BM_Exact)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_FaissFlat)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_FaissIvfFlat)->Arg(1)->Arg(4)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);
BENCHMARK(BM_FaissHnsw)->Arg(16)->Arg(64)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);
