// No host syncs in the step loops: a guided DDIM step (softmax and sigmoid classifier guidance), an unguided DDIM
// step, a DDIM inversion step, a guided DDPM step, and a training step of train_diffusion, train_classifier and
// train_clip, all built from the real plugins (tiny models) as `daug run` builds them.
//
// Per-step counts are differences: the same call with more steps (a higher noise level, more optimizer steps) must
// count exactly as many syncs as with fewer, so every per-call constant (input checks, the NaN check at the end of a
// phase, checkpoints, the final evaluation) cancels and what is left is the per-step count, which must be 0.
// The per-call constants are bounded separately. On a CPU run SyncCounter sees .item() (and data-dependent ops); a
// device run (DAUG_TEST_DEVICE=cuda, when the tests take it) also sees device-to-host copies.
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/pipeline.h>
#include <daug/core/plugin_loader.h>
#include <daug/generator.h>
#include <daug/guidance.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "all_plugins.h"
#include "sync_counter.h"
#include "test_support.h"

#include <cstdlib>
#include <iostream>

using daug::testing::SyncCounter;
using daug::testing::TempDir;

namespace {

const daug::core::PluginLoader& loader() { return daug::testing::all_plugins(); }

std::string device() {
  const char* d = std::getenv("DAUG_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

std::string run_table(const TempDir& d, const std::string& extra = "") {
  return "[run]\nname = \"syncs\"\ndevice = \"" + device() + "\"\nseed = 0\nruns_dir = \"" + (d / "runs").string() +
         "\"\ncache_dir = \"" + (d / "cache").string() + "\"\n" + extra;
}

// ---- sampling --------------------------------------------------------------------------------------------------

/// The tiny ddpm generator (T = 1000, ddim10: kept timesteps 0, 100, ..., 900), the tiny ADM classifier and the
/// given guidance plugin, built from the repository's configs.
struct Sampling {
  TempDir dir;
  std::unique_ptr<daug::core::Experiment> exp;
  std::shared_ptr<daug::Generator> gen;
  std::shared_ptr<daug::Guidance> guidance;

  explicit Sampling(const std::string& guidance_config) {
    const auto file = dir / "x.toml";
    daug::testing::write_text(
        file, "schema_version = 1\nimports = [\"" DAUG_SOURCE_DIR "/configs/data/nih_sample.toml\", \"" DAUG_SOURCE_DIR
              "/configs/generator/ddpm_tiny32.toml\", \"" DAUG_SOURCE_DIR "/configs/classifier/adm_tiny32.toml\", \"" +
                  std::string(DAUG_SOURCE_DIR) + "/configs/guidance/" + guidance_config + ".toml\"]\n" +
                  run_table(dir) + "[data]\nmax_per_split = 2\n");
    exp = std::make_unique<daug::core::Experiment>(loader(), daug::core::load_config(file), dir.path());
    gen = exp->component<daug::Generator>("generator");
    guidance = exp->component<daug::Guidance>("guidance");
  }

  /// Syncs of one translate of a [2,1,32,32] batch to `noise_level`.
  int64_t count(int64_t noise_level, bool guided, daug::EncodeMode mode, std::string* summary = nullptr) {
    at::manual_seed(3);
    const at::Device dev(device());
    daug::TranslateRequest r;
    r.x0 = (at::rand({2, 1, 32, 32}) * 2 - 1).to(dev);
    r.label = at::ones({2}, at::kLong);         // host labels: checked before the upload
    r.target = at::tensor({1, 2}, at::kLong);  // host targets: likewise
    r.guidance = guided ? guidance.get() : nullptr;
    r.noise_level = noise_level;
    r.encode = mode;
    gen->translate(r);  // warm-up: builds the device-resident schedule tables once
    SyncCounter c;
    at::Tensor x = gen->translate(r);
    if (summary) *summary = c.summary();
    EXPECT_TRUE(at::isfinite(x).all().item<bool>());
    return c.total();
  }
};

// Syncs a translate may make once per call: the NaN/Inf check of the input batch (1), the NaN/Inf record read at
// the end of each of the two phases (1 each, a device-to-host read; none on the CPU) and the guidance's range check
// of the target the generator uploaded (1 device-to-host read in the first guided step; none on the CPU).
constexpr int64_t kMaxPerTranslate = 4;

void expect_no_sync_per_step(const std::string& guidance, bool guided, daug::EncodeMode mode, const char* what) {
  Sampling s(guidance);
  std::string low_s, high_s;
  // ddim10: noise level 200 is index J = 2, 500 is J = 5. DDIM: J inversion + J decode steps; DDPM: J + 1 decode.
  const int64_t low = s.count(200, guided, mode, &low_s), high = s.count(500, guided, mode, &high_s);
  const int64_t extra_steps = mode == daug::EncodeMode::ddim_inversion ? 6 : 3;
  std::cout << what << ": " << low_s << " at noise level 200, " << high_s << " at 500; per step "
            << static_cast<double>(high - low) / static_cast<double>(extra_steps) << "\n";
  EXPECT_EQ(high, low) << what << ": " << extra_steps << " more steps made " << high - low
                       << " more host syncs (200: " << low_s << "; 500: " << high_s << ")";
  EXPECT_LE(low, kMaxPerTranslate) << what << ": " << low_s;
}

// The counter itself: what the per-step tests rely on must be seen (else they could not fail), and plain
// arithmetic must not be.
TEST(NoHostSync, CounterSeesItemBoolAndDataDependentShapesButNotArithmetic) {
  const at::Tensor x = at::arange(6, at::kFloat);
  SyncCounter c;
  at::Tensor y = (x * 2 + 1).sum();
  EXPECT_EQ(c.total(), 0) << c.summary();
  (void)y.item<double>();
  EXPECT_EQ(c.item(), 1) << c.summary();
  if (at::Tensor(x.gt(3).any()).item<bool>()) (void)x.gt(3).nonzero();
  EXPECT_EQ(c.item(), 2) << c.summary();
  EXPECT_GE(c.dynamic(), 1) << c.summary();
  c.reset();
  EXPECT_EQ(c.total(), 0) << c.summary();
}

TEST(NoHostSync, GuidedDdimStepSoftmax) {
  expect_no_sync_per_step("softmax", true, daug::EncodeMode::ddim_inversion,
                          "DDIM inversion + softmax-guided DDIM steps");
}

TEST(NoHostSync, GuidedDdimStepSigmoid) {
  expect_no_sync_per_step("sigmoid", true, daug::EncodeMode::ddim_inversion,
                          "DDIM inversion + sigmoid-guided DDIM steps");
}

TEST(NoHostSync, DdimInversionAndUnguidedStep) {
  expect_no_sync_per_step("softmax", false, daug::EncodeMode::ddim_inversion, "DDIM inversion + unguided DDIM steps");
}

TEST(NoHostSync, GuidedDdpmStep) {
  expect_no_sync_per_step("softmax", true, daug::EncodeMode::q_sample, "softmax-guided DDPM steps");
}

// ---- training --------------------------------------------------------------------------------------------------

/// Syncs of one `daug run` of `stage` (in-process) with `steps` optimizer steps, in a fresh cache.
/// `config`: the imports (quoted, comma-separated), a newline, then extra tables. `own_run`: [run].stages is just
/// `stage`; else the imported [run].stages are kept and only `stage` runs.
int64_t train_syncs(const std::string& config, const std::string& stage, bool own_run, int64_t steps,
                    std::string* summary) {
  TempDir d;
  const auto file = d / "x.toml";
  const auto nl = config.find('\n');
  daug::testing::write_text(file, "schema_version = 1\nimports = [" + config.substr(0, nl) + "]\n" +
                                      run_table(d, own_run ? "stages = [\"" + stage + "\"]\n" : "") +
                                      config.substr(nl + 1));
  const std::vector<std::string> overrides = {stage + "." + (stage == "train_clip" ? "max_steps" : "steps") + "=" +
                                              std::to_string(steps)};
  daug::core::RunOptions o;
  if (!own_run) o.only = {stage};
  SyncCounter c;
  daug::core::run_pipeline(loader(), daug::core::load_config(file, overrides), overrides, o);
  *summary = c.summary();
  return c.total();
}

void expect_no_sync_per_train_step(const std::string& config, const std::string& stage, bool own_run) {
  std::string two_s, four_s;
  const int64_t two = train_syncs(config, stage, own_run, 2, &two_s);
  const int64_t four = train_syncs(config, stage, own_run, 4, &four_s);
  std::cout << stage << ": " << two_s << " in a 2-step run, " << four_s << " in a 4-step run; per step "
            << static_cast<double>(four - two) / 2.0 << "\n";
  EXPECT_EQ(four, two) << stage << ": 2 more optimizer steps made " << four - two << " more host syncs (2 steps: "
                       << two_s << "; 4 steps: " << four_s << ")";
}

// The smoke heatmap pipeline's training stages (tiny UNet / classifier, batch 4), one checkpoint at the end.
const std::string kHeatmapSmoke = "\"" DAUG_SOURCE_DIR "/configs/smoke/heatmaps_nih.toml\"\n"
                                  "[train_classifier]\ncheckpoint_every = 1000\n"
                                  "[train_diffusion]\ncheckpoint_every = 1000\n";

TEST(NoHostSync, TrainDiffusionStep) { expect_no_sync_per_train_step(kHeatmapSmoke, "train_diffusion", false); }

TEST(NoHostSync, TrainClassifierStep) { expect_no_sync_per_train_step(kHeatmapSmoke, "train_classifier", false); }

TEST(NoHostSync, TrainClipStep) {
  // Tiny CLIP, hybrid loss in two contrastive groups, gradient clipping on, no heatmaps (composer channels = []).
  const std::string cfg =
      "\"" DAUG_SOURCE_DIR "/configs/data/nih_sample.toml\", \"" DAUG_SOURCE_DIR "/configs/clip/clip_tiny.toml\", \"" DAUG_SOURCE_DIR
      "/configs/clip/hybrid.toml\", \"" DAUG_SOURCE_DIR "/configs/clip/none.toml\"\n"
      "[data]\nmax_per_split = 4\n"
      "[train_clip]\nplugin = \"train_clip\"\ndata = \"data\"\nbackbone = \"backbone\"\ncriterion = \"criterion\"\n"
      "composer = \"clip_composer\"\nsplit = \"train+val\"\nepochs = 4\nbatch_size = 4\ncontrastive_group = 2\n"
      "lr = 1e-4\nwarmup_steps = 1\ngrad_clip = 0.5\ncheckpoint_every = 1000\nlog_every = 1000\n";
  expect_no_sync_per_train_step(cfg, "train_clip", true);
}

}  // namespace
