// Heatmap stage throughput (images/s) with the real plugins (ddpm generator, adm_classifier, softmax guidance,
// absdiff_minmax composer, nih source) at the main CPU config's model size (configs/cpu/heatmaps_nih.toml: tiny 32²
// UNet and classifier, ddim20 → L = 500 is 10 inversion + 10 guided steps), batch 1 and 8, untrained weights (the
// cost does not depend on the weights). Each iteration runs the `heatmaps` stage on a fresh output directory over
// `batch` images of the embedded NIH sample.
//   BM_HeatmapsStage/<batch>            the default options (byte-identical heatmaps to the main job's)
//   BM_HeatmapsStage_concurrent/<batch> [generator] concurrent_guidance = true (the same heatmaps: test
//                                       DdpmGenerator.ConcurrentGuidanceGivesIdenticalHeatmaps...)
// ratio_vs_eager: against tests/bench/eager_baseline.py heatmaps (the same models, steps and batch in eager PyTorch,
// translate + composer only: no decoding or file writing) run in the same session (tests/bench/eager.h).
//   DAUG_BENCH_THREADS=1 build/bench/heatmaps_bench [--benchmark_filter=...]   device: DAUG_BENCH_DEVICE (cpu)
// Optional: DAUG_BENCH_PRESET=tiny32 (ddim10: 5 + 5 steps) or cpu64 (configs/generator/ddpm_cpu64.toml +
// configs/classifier/adm_cpu64.toml, 64², ddim20; no eager ratio) instead of cpu32.
#include <daug/error.h>
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/log.h>
#include <daug/stage.h>

#include "eager.h"

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

namespace {

daug::core::PluginLoader& loader() {
  static auto* l = [] {  // leaked on purpose: plugin libraries are never unloaded (plugin_loader.h)
    auto* p = new daug::core::PluginLoader({DAUG_BENCH_PLUGIN_DIR});
    p->load_all();
    return p;
  }();
  return *l;
}

std::string preset() { return daug::bench::env_or("DAUG_BENCH_PRESET", "cpu32"); }

std::string config_text(int64_t batch, bool concurrent) {
  const std::string p = preset();
  const std::string gen = p == "cpu64" ? "cpu64" : p == "tiny32" ? "tiny32" : "cpu32";
  const std::string clf = p == "cpu64" ? "cpu64" : "tiny32";
  return fmt::format(R"(schema_version = 1
imports = ["data/nih_sample.toml", "generator/ddpm_{0}.toml", "classifier/adm_{2}.toml", "guidance/softmax.toml",
           "composer/absdiff_minmax.toml", "stages/heatmap_pipeline.toml"]
[run]
name = "heatmaps_bench"
device = "{3}"
[generator]
concurrent_guidance = {4}
[heatmaps]
diffusion_stage = ""
classifier_stage = ""
split = "test"
limit = {1}
batch_size = {1}
overlays = 0
log_every_s = 1e9
)",
                     gen, batch, clf, daug::bench::device().str(), concurrent ? "true" : "false");
}

void heatmaps_stage(benchmark::State& state, bool concurrent) {
  const int64_t batch = state.range(0);
  at::set_num_threads(daug::bench::threads());
  daug::log::set_level(daug::log::Level::warn);
  const auto root = std::filesystem::temp_directory_path() / fmt::format("daug_heatmaps_bench_{}", batch);
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  auto doc = daug::core::parse_config(config_text(batch, concurrent), "heatmaps_bench.toml", {},
                                      std::filesystem::path(DAUG_SOURCE_DIR) / "configs");
  daug::core::Experiment exp(loader(), doc, root);
  auto stage = exp.component<daug::Stage>("heatmaps");
  int64_t images = 0, it = 0;
  daug::bench::MinTimer timer;
  timer.start();
  for (auto _ : state) {
    const auto out = root / fmt::format("out{}", it++);
    std::filesystem::create_directories(out);
    // No upstream stages (diffusion_stage = classifier_stage = ""): no artifact is ever asked for.
    daug::StageContext ctx{out,
                           [](const std::string& t, const std::string&) -> std::filesystem::path {
                             throw daug::ConfigError("heatmaps_bench: no upstream stage [" + t + "]");
                           },
                           exp, 0, 1, false, stage->outputs()};
    stage->run(ctx);
    images += batch;
    timer.lap();
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(images), benchmark::Counter::kIsRate);
  state.counters["best_images_per_s"] = static_cast<double>(batch) / timer.best();
  state.counters["threads"] = daug::bench::threads();
  if (preset() != "cpu64")
    daug::bench::report_vs_eager(state, timer,
                                 fmt::format("heatmaps --batch {} --respacing {} --iters 3", batch,
                                             preset() == "tiny32" ? "ddim10" : "ddim20"));
  state.SetLabel(preset() + (concurrent ? " concurrent" : "") + " on " + daug::bench::device().str());
  std::filesystem::remove_all(root);
}

void BM_HeatmapsStage(benchmark::State& state) { heatmaps_stage(state, false); }
void BM_HeatmapsStage_concurrent(benchmark::State& state) { heatmaps_stage(state, true); }

}  // namespace

BENCHMARK(BM_HeatmapsStage)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_HeatmapsStage_concurrent)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
