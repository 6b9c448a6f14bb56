// Range errors that need more than one option (noise_level vs the generator's T, the device vs the LibTorch build,
// precision vs the device) surface while the config is built, with file:line, before anything runs or is
// written. Built from the real smoke config and the real plugins.
#include <daug/core/config_loader.h>
#include <daug/core/pipeline.h>
#include <daug/core/plugin_loader.h>
#include <daug/error.h>

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <cstdlib>

#include "all_plugins.h"
#include "test_support.h"

using daug::testing::TempDir;

namespace {

const daug::core::PluginLoader& loader() { return daug::testing::all_plugins(); }

/// Runs the smoke heatmap pipeline with `run_extra` lines in [run] (line 6 on) and then `tables`; returns the
/// ConfigError's message, or "" if the run did not fail with one. Nothing may have been written.
std::string config_error(const std::string& run_extra, const std::string& tables) {
  TempDir d;
  const auto file = d / "x.toml";
  daug::testing::write_text(file, "schema_version = 1\nimports = [\"" DAUG_SOURCE_DIR
                                  "/configs/smoke/heatmaps_nih.toml\"]\n"
                                  "[run]\nruns_dir = \"" +
                                      (d / "runs").string() + "\"\ncache_dir = \"" + (d / "cache").string() + "\"\n" +
                                      run_extra + tables);
  std::string message;
  try {
    daug::core::run_pipeline(loader(), daug::core::load_config(file), {}, {});
  } catch (const daug::ConfigError& e) {
    message = e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(d / "runs")) << message;
  EXPECT_FALSE(std::filesystem::exists(d / "cache")) << message;
  return message;
}

void expect_has(const std::string& message, const std::string& needle) {
  EXPECT_NE(message.find(needle), std::string::npos) << "message: " << message << "\nmissing: " << needle;
}

}  // namespace

TEST(RangeChecks, NoiseLevelAboveTIsRefusedWithLocationBeforeCompute) {
  const auto m = config_error("", "[heatmaps]\nnoise_level = 5000\n");
  expect_has(m,
             "x.toml:7:15: [heatmaps].noise_level must be < T = 1000 (diffusion_steps of [generator]), but got 5000");
}

TEST(RangeChecks, InfiniteGuidanceScaleIsRefusedWithLocation) {
  const auto m = config_error("", "[guidance]\nscale = inf\n");
  expect_has(m, "x.toml:7:9: [guidance].scale must be finite and >= 0, but got inf");
}

TEST(RangeChecks, CudaDeviceOnLibTorchWithoutCudaSaysSo) {
  if (c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA)) {
    // A CUDA build: an index past the visible devices is the error.
    expect_has(config_error("device = \"cuda:999\"\n", ""), "x.toml:6:10: [run].device = \"cuda:999\", but ");
    GTEST_SKIP() << "this LibTorch has CUDA; checked cuda:999 instead";
  }
  const auto m = config_error("device = \"cuda\"\n", "");
  expect_has(m, "x.toml:6:10: [run].device = \"cuda\", but this LibTorch");
  expect_has(m, "was built without CUDA");
}

TEST(RangeChecks, MisspelledCudaDeviceIsAFormatErrorOnAnyBuild) {
  for (const char* d : {"cuda:x", "cuda:", "cudax", "cuda:-1"}) {
    const auto m = config_error(std::string("device = \"") + d + "\"\n", "");
    expect_has(m, std::string("x.toml:6:10: [run].device must be \"cpu\", \"cuda\" or \"cuda:N\", but got \"") + d +
                      "\"");
  }
}

TEST(RangeChecks, Float16OnCpuIsRefusedWithLocation) {
  expect_has(config_error("precision = \"fp16\"\n", ""),
             "x.toml:6:13: [run].precision = \"fp16\" needs a CUDA device, but [run].device = \"cpu\"");
  expect_has(config_error("", "[heatmaps]\nprecision = \"fp16\"\n"),
             "x.toml:7:13: [heatmaps].precision = \"fp16\" needs a CUDA device, but [run].device = \"cpu\"");
}

TEST(RangeChecks, UnknownPrecisionIsRefusedWithLocation) {
  const auto m = config_error("precision = \"fp8\"\n", "");
  expect_has(m, "x.toml:6:13");
  expect_has(m, "fp8");
}

TEST(RangeChecks, Bf16OnCpuWithoutBf16InstructionsNeedsTheExplicitOptIn) {
  ::setenv("DAUG_CPU_BF16", "0", 1);  // as on this AVX2 machine, whatever CPU runs the test
  const auto m = config_error("precision = \"bf16\"\n", "");
  ::unsetenv("DAUG_CPU_BF16");
  expect_has(m,
             "x.toml:6:13: [run].precision = \"bf16\" on [run].device = \"cpu\", but this CPU has no bf16 "
             "instructions");
  expect_has(m, "allow_emulated_bf16 = true");
}

TEST(RangeChecks, RemovedComputeDtypePointsToPrecision) {
  const auto m = config_error("", "[generator]\ncompute_dtype = \"bfloat16\"\n");
  expect_has(m, "x.toml:7:17: [generator].compute_dtype = \"bfloat16\": the option was replaced by [run].precision");
  expect_has(m, "precision = \"bf16\"");
}
