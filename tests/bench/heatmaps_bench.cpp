// Heatmap stage throughput (images/s) with the real plugins (ddpm generator, adm_classifier, softmax guidance,
// absdiff_minmax composer, nih source) at the tiny preset (32², ddim10 → L = 500 is 5 inversion + 5 guided steps),
// batch 1 and 8, untrained weights (the cost does not depend on the weights). Each iteration runs the `heatmaps`
// stage on a fresh output directory over `batch` images of the embedded NIH sample.
//   build/bench/heatmaps_bench [--benchmark_filter=...]
// Optional: DAUG_BENCH_PRESET=cpu64 uses configs/generator/ddpm_cpu64.toml + configs/classifier/adm_cpu64.toml
// (64², ddim20) instead.
#include <daug/error.h>
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/log.h>
#include <daug/stage.h>

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

std::string config_text(int64_t batch) {
  const char* preset = std::getenv("DAUG_BENCH_PRESET");
  const std::string size = preset && std::string(preset) == "cpu64" ? "cpu64" : "tiny32";
  return fmt::format(R"(schema_version = 1
imports = ["data/nih_sample.toml", "generator/ddpm_{0}.toml", "classifier/adm_{0}.toml", "guidance/softmax.toml",
           "composer/absdiff_minmax.toml", "stages/heatmap_pipeline.toml"]
[run]
name = "heatmaps_bench"
[heatmaps]
diffusion_stage = ""
classifier_stage = ""
split = "test"
limit = {1}
batch_size = {1}
overlays = 0
log_every_s = 1e9
)",
                     size, batch);
}

void BM_HeatmapsStage(benchmark::State& state) {
  const int64_t batch = state.range(0);
  daug::log::set_level(daug::log::Level::warn);
  const auto root = std::filesystem::temp_directory_path() / fmt::format("daug_heatmaps_bench_{}", batch);
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  auto doc = daug::core::parse_config(config_text(batch), "heatmaps_bench.toml", {},
                                      std::filesystem::path(DAUG_SOURCE_DIR) / "configs");
  daug::core::Experiment exp(loader(), doc, root);
  auto stage = exp.component<daug::Stage>("heatmaps");
  int64_t images = 0, it = 0;
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
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(images), benchmark::Counter::kIsRate);
  state.counters["threads"] = at::get_num_threads();
  std::filesystem::remove_all(root);
}

}  // namespace

BENCHMARK(BM_HeatmapsStage)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
