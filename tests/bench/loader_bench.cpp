// The prefetching loader (issue 10 item 4) on the embedded NIH sample (585 256² PNGs), main thread at one LibTorch
// thread as configs/cpu/heatmaps_nih.toml:
//   BM_DecodeNih/<workers>: decode-bound throughput (images/s): every image decoded and prepared as the stages do it
//     (gray float, bilinear AA resize to the CPU config's 32², min-max), in batches of 16 taken by a consumer that
//     does nothing else; workers = 0 is today's synchronous loop.
//   BM_TrainClassifierEpoch/<workers>: one epoch of the real train_classifier stage (adm_tiny32 classifier, the CPU
//     config's batch 16 and lr, 340 images → 21 steps), cache_images = false so every step decodes, no evaluation.
// Each row prints x_sync: the synchronous (workers = 0) time of the same benchmark in the same run divided by this
// row's time (> 1 = faster than synchronous). Repeat (--benchmark_repetitions) on a shared machine and take the min.
//   build/bench/loader_bench [--benchmark_filter=...] [--benchmark_repetitions=3]
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/data/image.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/stage.h>
#include <daug/train/prefetcher.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace {

const std::filesystem::path kNih = std::filesystem::path(DAUG_SOURCE_DIR) / "examples/data/nih-cxr14-sample";

std::vector<std::filesystem::path> nih_images() {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(kNih / "images"))
    if (e.path().extension() == ".png") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Synchronous seconds per iteration of each benchmark, for the x_sync ratio of the rows with workers.
std::map<std::string, double>& sync_seconds() {
  static std::map<std::string, double> m;
  return m;
}

void report_ratio(benchmark::State& state, const std::string& name, int64_t workers, double seconds_per_iter) {
  if (workers == 0) sync_seconds()[name] = seconds_per_iter;
  auto it = sync_seconds().find(name);
  if (it != sync_seconds().end()) state.counters["x_sync"] = it->second / seconds_per_iter;
  state.counters["workers"] = static_cast<double>(workers);
}

void BM_DecodeNih(benchmark::State& state) {
  at::set_num_threads(1);
  const int64_t workers = state.range(0), batch = 16;
  static const auto files = nih_images();
  const auto n = static_cast<int64_t>(files.size());
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    daug::train::PrefetchJob job;
    job.batches = (n + batch - 1) / batch;
    job.indices = [&](int64_t k) {
      std::vector<int64_t> idx;
      for (int64_t i = k * batch; i < std::min(n, (k + 1) * batch); ++i) idx.push_back(i);
      return idx;
    };
    job.item = [&](int64_t i) {
      at::Tensor x = daug::data::load_gray(files[static_cast<size_t>(i)]).to(at::kFloat);
      return std::vector<at::Tensor>{daug::data::minmax(daug::data::resize(x, 32, 32, daug::data::Filter::bilinear))};
    };
    daug::train::Prefetcher pf(std::move(job), {workers, 2});
    while (pf.delivered() < pf.batches()) benchmark::DoNotOptimize(pf.next());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  state.counters["images_per_s"] =
      benchmark::Counter(static_cast<double>(n * state.iterations()), benchmark::Counter::kIsRate);
  report_ratio(state, "decode", workers, seconds / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_DecodeNih)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

daug::core::PluginLoader& loader() {
  static auto* l = [] {  // leaked on purpose: plugin libraries are never unloaded (plugin_loader.h)
    auto* p = new daug::core::PluginLoader({DAUG_BENCH_PLUGIN_DIR});
    p->load_all();
    return p;
  }();
  return *l;
}

void BM_TrainClassifierEpoch(benchmark::State& state) {
  const int64_t workers = state.range(0);
  daug::log::set_level(daug::log::Level::warn);
  const auto root = std::filesystem::temp_directory_path() / fmt::format("daug_loader_bench_{}", workers);
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  const std::string text = fmt::format(R"(schema_version = 1
imports = ["data/nih_sample.toml", "generator/ddpm_cpu32.toml", "classifier/adm_tiny32.toml",
           "stages/heatmap_pipeline.toml"]
[run]
name = "loader_bench"
threads = 1
[train_classifier]
batch_size = 16
epochs = 1
lr = 3e-4
eval_split = ""
checkpoint_every = 0
log_every_s = 1e9
cache_images = false
loader_workers = {}
prefetch = 2
)",
                                       workers);
  auto doc =
      daug::core::parse_config(text, "loader_bench.toml", {}, std::filesystem::path(DAUG_SOURCE_DIR) / "configs");
  daug::core::Experiment exp(loader(), doc, root);
  at::set_num_threads(1);
  auto stage = exp.component<daug::Stage>("train_classifier");
  int64_t it = 0;
  double seconds = 0;
  for (auto _ : state) {
    const auto out = root / fmt::format("out{}", it++);
    std::filesystem::create_directories(out);
    daug::StageContext ctx{out,
                           [](const std::string& t, const std::string&) -> std::filesystem::path {
                             throw daug::ConfigError("loader_bench: no upstream stage [" + t + "]");
                           },
                           exp,
                           0,
                           1,
                           false,
                           stage->outputs()};
    const auto t0 = std::chrono::steady_clock::now();
    stage->run(ctx);  // a fresh output directory: no checkpoint to resume, the whole epoch runs
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  report_ratio(state, "train_classifier_epoch", workers, seconds / static_cast<double>(state.iterations()));
  std::filesystem::remove_all(root);
}
BENCHMARK(BM_TrainClassifierEpoch)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

}  // namespace
