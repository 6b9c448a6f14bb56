// generator_ddpm: translate() index patterns, guidance plumbing (original timesteps), DDIM reconstruction,
// errors, checkpoints, training loss.
#include "ddpm_generator.h"

#include <daug/batch_part.h>
#include <daug/checkpoint.h>
#include <daug/classifier.h>
#include <daug/core/config_loader.h>
#include <daug/core/plugin_loader.h>
#include <daug/error.h>
#include <daug/guidance.h>
#include <daug/labels.h>
#include <daug/precision.h>

#include "test_support.h"
#include "fakes/toy_classifier.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adam.h>

#include <cmath>
#include <iostream>
#include <thread>

using daug::EncodeMode;
using daug::TranslateRequest;
using daug::plugins::DdpmGenerator;
using daug::plugins::DdpmGeneratorOptions;
using daug::testing::expect_error_contains;
using daug::testing::max_abs_diff;

namespace {

DdpmGeneratorOptions tiny(const std::string& respacing = "") {
  DdpmGeneratorOptions o;
  o.preset = "tiny";
  o.timestep_respacing = respacing;
  return o;
}

void randomize(const daug::NamedTensors& nt, double std) {
  at::NoGradGuard g;
  for (const auto& [k, v] : nt) {
    at::Tensor t = v;
    t.normal_(0, std);
  }
}

/// Makes the UNet output the constant ε = c (and v = 0) everywhere: all weights 0, out.2.bias = [c, 0].
void make_constant_eps(DdpmGenerator& g, double c) {
  at::NoGradGuard ng;
  for (const auto& [k, v] : g.state()) {
    at::Tensor t = v;
    t.zero_();
    if (k == "out.2.bias") t[0] = c;
  }
}

/// Records the timesteps it is called with and returns a fixed gradient.
struct SpyGuidance : daug::Guidance {
  std::vector<int64_t> seen;
  double value = 0.0;
  int64_t nan_item = -1;
  at::Tensor gradient(const daug::GuidanceInput& in) override {
    seen.push_back(in.t[0].item<int64_t>());
    EXPECT_EQ(in.t.scalar_type(), at::kLong);
    at::Tensor g = at::full_like(in.x_t, value * in.direction);
    if (nan_item >= 0) g[nan_item] = NAN;
    return g;
  }
  std::string describe() const override { return "spy"; }
};

at::Tensor images(int64_t n, uint64_t seed = 3) {
  at::manual_seed(seed);
  return at::rand({n, 1, 32, 32});
}

}  // namespace

TEST(DdpmGenerator, DescribesItselfAndReportsShape) {
  DdpmGenerator g(tiny("ddim100"), "cpu");
  EXPECT_EQ(g.image_shape(), (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(g.num_timesteps(), 1000);
  EXPECT_EQ(g.sampler().num_steps(), 100);
  EXPECT_NE(g.describe().find("respacing='ddim100'"), std::string::npos) << g.describe();
  // out channels 2C with learn_sigma, guided-diffusion names in state()
  bool found = false;
  for (const auto& [k, v] : g.state())
    if (k == "out.2.weight") found = v.size(0) == 2;
  EXPECT_TRUE(found);
}

TEST(DdpmGenerator, QSampleIsTheClosedForm) {
  DdpmGenerator g(tiny(), "cpu");
  at::Tensor x0 = images(2), noise = at::randn_like(x0);
  at::Tensor t = at::tensor(std::vector<int64_t>{0, 999});
  at::Tensor xt = g.q_sample(x0, t, noise);
  const auto& ac = g.sampler().alphas_cumprod();
  EXPECT_LT(max_abs_diff(xt[1], std::sqrt(ac[999]) * x0[1] + std::sqrt(1 - ac[999]) * noise[1]), 1e-6);
  EXPECT_LT(max_abs_diff(xt[0], std::sqrt(ac[0]) * x0[0] + std::sqrt(1 - ac[0]) * noise[0]), 1e-6);
}

TEST(DdpmGenerator, DdimInversionRoundTripIsExactForAConstantEpsModel) {
  auto o = tiny("ddim10");
  o.clip_denoised = false;
  DdpmGenerator g(o, "cpu");
  make_constant_eps(g, 0.25);
  TranslateRequest r;
  r.x0 = images(2);
  r.label = at::ones({2}, at::kLong);
  r.noise_level = 500;
  at::Tensor out = g.translate(r);
  EXPECT_LT(max_abs_diff(out, r.x0), 2e-5);
}

TEST(DdpmGenerator, DdimInversionRoundTripWithARandomUNetAtScaleZero) {
  // A random (non-zero) tiny UNet: DDIM inversion is exact only up to the discretisation error
  // ε(x_t, t) ≈ ε(x_{t+1}, t+1). With ddim250 (stride 4) and L = 100 (25 + 25 steps) the measured max error
  // is printed below; we allow 1e-3 on inputs in [0, 1] (ε itself varies by > 1e-2 across inputs and t). clip_denoised = false because clamping x̂0 is not
  // invertible.
  auto o = tiny("ddim250");
  o.clip_denoised = false;
  DdpmGenerator g(o, "cpu");
  at::manual_seed(21);
  randomize(g.state(), 0.05);
  TranslateRequest r;
  r.x0 = images(2);
  r.label = at::tensor(std::vector<int64_t>{0, 1});
  r.noise_level = 100;
  at::NoGradGuard ng;
  // the model is far from trivial: ε differs between inputs and timesteps
  at::Tensor e1 = g.model_output(r.x0, at::full({2}, 10, at::kLong), r.label);
  at::Tensor e2 = g.model_output(r.x0 * 0.5, at::full({2}, 90, at::kLong), r.label);
  EXPECT_GT(max_abs_diff(e1, e2), 1e-2);  // measured 0.022
  at::Tensor out = g.translate(r);
  const double err = max_abs_diff(out, r.x0);
  EXPECT_LT(err, 1e-3);  // measured 7.8e-5
  std::printf("[ measured ] DDIM round-trip max error, random tiny UNet, T=1000, L=100: %.3g\n", err);
}

TEST(DdpmGenerator, GuidanceReceivesOriginalTimestepsUnderRespacing) {
  for (bool exact : {false, true}) {
    auto o = tiny("ddim10");  // kept: 0, 100, ..., 900
    o.exact_index_pattern = exact;
    DdpmGenerator g(o, "cpu");
    SpyGuidance spy;
    TranslateRequest r;
    r.x0 = images(1);
    r.label = at::ones({1}, at::kLong);
    r.guidance = &spy;
    r.target = at::zeros({1}, at::kLong);
    r.noise_level = 500;
    g.translate(r);
    EXPECT_EQ(spy.seen, exact ? (std::vector<int64_t>{300, 200, 100, 0})
                              : (std::vector<int64_t>{500, 400, 300, 200, 100}))
        << "exact=" << exact;
    spy.seen.clear();
    r.encode = EncodeMode::q_sample;
    g.translate(r);
    EXPECT_EQ(spy.seen, exact ? (std::vector<int64_t>{400, 300, 200, 100, 0})
                              : (std::vector<int64_t>{500, 400, 300, 200, 100, 0}))
        << "exact=" << exact;
  }
}

namespace {
/// Records the timesteps it receives; logits depend on x so the guidance gradient is non-zero.
struct SpyClassifier : daug::testing::StatelessClassifier {
  std::vector<int64_t> seen;
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override {
    seen.push_back(t[0].item<int64_t>());
    at::Tensor m = x.mean({1, 2, 3}).unsqueeze(1);
    return at::cat({m, -m, 2 * m, m * m, -m, m, m}, 1);
  }
  std::vector<std::string> class_names() const override { return daug::SuperClassGrouping::released().names; }
  std::string describe() const override { return "spy classifier"; }
};
}  // namespace

TEST(DdpmGenerator, RealSoftmaxPluginPassesOriginalTimestepsToTheClassifier) {
  const std::filesystem::path lib = std::filesystem::path(DAUG_TEST_PLUGIN_DIR) / "libdaug-plugin-guidance_softmax.so";
  if (!std::filesystem::exists(lib)) GTEST_SKIP() << "softmax plugin not built: " << lib;
  static auto* loader = new daug::core::PluginLoader(std::vector<std::filesystem::path>{});  // plugin libraries are never unloaded
  const auto& info = loader->load_library(lib);
  ASSERT_EQ(info.name, "softmax");
  auto spy = std::make_shared<SpyClassifier>();
  daug::testing::TestContext ctx;
  ctx.add("classifier", spy);
  auto doc = daug::core::parse_config("[guidance]\nplugin = \"softmax\"\nscale = 10.0\n", "spy.toml");
  auto guidance = std::dynamic_pointer_cast<daug::Guidance>(info.manifest->create(daug::ConfigView(doc, "guidance"), ctx));
  ASSERT_TRUE(guidance);
  auto o = tiny("ddim20");  // kept: 0, 50, ..., 950
  DdpmGenerator g(o, "cpu");
  TranslateRequest r;
  r.x0 = images(2);
  r.label = at::ones({2}, at::kLong);
  r.guidance = guidance.get();
  r.target = at::zeros({2}, at::kLong);
  r.noise_level = 250;
  at::Tensor guided = g.translate(r);
  EXPECT_EQ(spy->seen, (std::vector<int64_t>{250, 200, 150, 100, 50}));
  r.guidance = nullptr;
  EXPECT_GT(max_abs_diff(guided, g.translate(r)), 1e-4);  // the guidance acted
}

TEST(DdpmGenerator, ZeroGuidanceEqualsUnguidedAndGuidanceMovesTheSample) {
  auto o = tiny("ddim10");
  DdpmGenerator g(o, "cpu");
  at::manual_seed(5);
  randomize(g.state(), 0.02);
  SpyGuidance zero, push;
  push.value = 0.5;
  TranslateRequest r;
  r.x0 = images(2);
  r.label = at::ones({2}, at::kLong);
  r.target = at::zeros({2}, at::kLong);
  r.noise_level = 300;
  at::Tensor plain = g.translate(r);
  r.guidance = &zero;
  EXPECT_LT(max_abs_diff(g.translate(r), plain), 1e-5);  // ε re-derived from x̂0: float32 rounding only
  r.guidance = &push;
  at::Tensor up = g.translate(r);
  r.direction = -1;
  at::Tensor down = g.translate(r);
  // A positive constant gradient lowers ε' and so raises x̂0 at every guided step: the mean moves up.
  EXPECT_GT((up - plain).mean().item<double>(), 1e-3);
  EXPECT_LT((down - plain).mean().item<double>(), -1e-3);
}

// bf16 sampling (autocast around translate, as the heatmaps stage does): the UNet's convolutions and matmuls run in
// bf16 while the sampler state stays float32. Independent fact: the fp32 run of the same model and seed. The
// heatmap |x0 - x̂| must correlate >= 0.99 with the fp32 one (the bar), and bf16 must actually have run
// (the outputs differ).
TEST(DdpmGenerator, Bf16SamplingHeatmapCorrelatesWithFloat32AndTrainingKeepsFloat32Masters) {
  DdpmGenerator g(tiny("ddim10"), "cpu");
  at::manual_seed(5);
  randomize(g.state(), 0.02);
  // Guidance toward a spatial pattern (a blob in the upper left), so the heatmap has structure to compare; without
  // it the heatmap is only the reconstruction's rounding noise, which no precision reproduces.
  struct BlobGuidance : daug::Guidance {
    at::Tensor gradient(const daug::GuidanceInput& in) override {
      const auto h = in.x_t.size(2), w = in.x_t.size(3);
      const at::Tensor yy = at::arange(h, at::kFloat).view({h, 1}), xx = at::arange(w, at::kFloat).view({1, w});
      const at::Tensor blob = at::exp(-((yy - h / 4.0).pow(2) + (xx - w / 4.0).pow(2)) / (2.0 * 4.0 * 4.0));
      return (0.5 * in.direction * blob).expand_as(in.x_t).contiguous();
    }
    std::string describe() const override { return "blob"; }
  } blob;
  TranslateRequest r;
  r.x0 = images(2);
  r.label = at::ones({2}, at::kLong);
  r.guidance = &blob;
  r.target = at::zeros({2}, at::kLong);
  r.noise_level = 300;
  at::manual_seed(1);
  at::Tensor a = g.translate(r);
  at::Tensor b;
  {
    daug::AutocastGuard autocast(daug::Precision::bf16, "cpu");
    at::manual_seed(1);
    b = g.translate(r);
  }
  EXPECT_EQ(b.scalar_type(), at::kFloat);
  EXPECT_GT(max_abs_diff(a, b), 0.0) << "autocast had no effect: the test would not see bf16";
  const at::Tensor ha = (r.x0 - a).abs().flatten().to(at::kDouble), hb = (r.x0 - b).abs().flatten().to(at::kDouble);
  const at::Tensor da = ha - ha.mean(), db = hb - hb.mean();
  const double pearson =
      (da * db).sum().item<double>() / std::sqrt((da * da).sum().item<double>() * (db * db).sum().item<double>());
  EXPECT_GE(pearson, 0.99);
  std::cout << "bf16 vs fp32 heatmap: Pearson " << pearson << ", max |x̂32 - x̂16| " << max_abs_diff(a, b) << "\n";
  // Training under bf16 autocast: a float32 loss, float32 gradients on the float32 parameters.
  r.guidance = nullptr;
  at::Tensor loss;
  {
    daug::AutocastGuard autocast(daug::Precision::bf16, "cpu");
    loss = g.training_loss(images(2), r.label);
  }
  EXPECT_EQ(loss.scalar_type(), at::kFloat);
  loss.backward();
  for (const auto& p : g.parameters()) {
    EXPECT_EQ(p.scalar_type(), at::kFloat);
    if (p.grad().defined()) EXPECT_EQ(p.grad().scalar_type(), at::kFloat);
  }
}

TEST(DdpmGenerator, BadRequestsGiveClearErrors) {
  DdpmGenerator g(tiny("ddim100"), "cpu");
  TranslateRequest r;
  r.x0 = images(2);
  r.label = at::ones({2}, at::kLong);
  r.noise_level = 1000;
  expect_error_contains([&] { g.translate(r); }, {"noise_level", "[1, 999]", "1000"});
  r.noise_level = 0;
  EXPECT_THROW(g.translate(r), daug::ConfigError);
  r.noise_level = 505;
  expect_error_contains([&] { g.translate(r); }, {"505", "ddim100", "500 or 510"});
  r.noise_level = 500;
  r.x0 = at::rand({2, 3, 32, 32});
  expect_error_contains([&] { g.translate(r); }, {"[N, 1, 32, 32]", "[2, 3, 32, 32]"});
  r.x0 = at::rand({2, 1, 64, 64});
  EXPECT_THROW(g.translate(r), daug::DataError);
  r.x0 = images(2);
  r.x0[1][0][3][3] = NAN;
  expect_error_contains([&] { g.translate(r); }, {"NaN"});
  r.x0 = images(2);
  r.label = at::Tensor();
  expect_error_contains([&] { g.translate(r); }, {"class-conditional", "label"});
  // Labels and timesteps are range-checked on the host before their upload (no device read-back per step).
  r.label = at::tensor(std::vector<int64_t>{0, 3});
  expect_error_contains([&] { g.translate(r); }, {"labels must be in [0, 1], but got values in [0, 3]"});
  expect_error_contains([&] { g.training_loss(images(2), r.label); }, {"training_loss: labels must be in [0, 1]"});
  expect_error_contains([&] { g.q_sample(images(2), at::tensor(std::vector<int64_t>{5, 1000}), at::zeros({2, 1, 32, 32})); },
                        {"q_sample: timesteps must be in [0, 999], but got values in [5, 1000]"});
  EXPECT_THROW(DdpmGenerator([] { auto o = tiny("ddim300"); return o; }(), "cpu"), daug::ConfigError);
  EXPECT_THROW(DdpmGenerator([] { auto o = tiny(); o.variance = "fixed_small"; return o; }(), "cpu"),
               daug::ConfigError);
}

TEST(DdpmGenerator, NonFiniteValuesDuringSamplingNameTheItem) {
  DdpmGenerator g(tiny("ddim10"), "cpu");
  SpyGuidance bad;
  bad.value = 1.0;
  bad.nan_item = 1;
  TranslateRequest r;
  r.x0 = images(3);
  r.label = at::ones({3}, at::kLong);
  r.target = at::zeros({3}, at::kLong);
  r.guidance = &bad;
  r.noise_level = 200;
  expect_error_contains([&] { g.translate(r); }, {"batch item(s) [1]", "timestep 200"});
}

TEST(DdpmGenerator, CheckpointRoundTripGivesIdenticalOutputs) {
  daug::testing::TempDir dir;
  at::manual_seed(1);
  DdpmGenerator a(tiny(), "cpu");
  randomize(a.state(), 0.05);
  daug::save_safetensors(dir / "gen.safetensors", a.state(), {{"plugin", "ddpm"}});
  at::manual_seed(2);
  DdpmGenerator b(tiny(), "cpu");
  b.load_state(daug::load_safetensors(dir / "gen.safetensors").tensors);
  at::NoGradGuard ng;
  at::Tensor x = images(2), t = at::tensor(std::vector<int64_t>{5, 700}), y = at::tensor(std::vector<int64_t>{0, 1});
  at::Tensor oa = a.model_output(x, t, y), ob = b.model_output(x, t, y);
  EXPECT_GT(oa.abs().max().item<double>(), 1e-3);
  EXPECT_EQ(max_abs_diff(oa, ob), 0.0);
  // A mis-shaped tensor names the key and both shapes; nothing is copied.
  auto st = a.state();
  for (auto& [k, v] : st)
    if (k == "out.2.weight") v = at::zeros({4, 32, 3, 3});
  at::Tensor before = b.state().front().second.clone();
  expect_error_contains([&] { b.load_state(st); }, {"out.2.weight", "[4, 32, 3, 3]", "[2, 32, 3, 3]"});
  EXPECT_EQ(max_abs_diff(before, b.state().front().second), 0.0);
}

TEST(DdpmGenerator, TrainingLossIsFiniteAndDifferentiable) {
  DdpmGenerator g(tiny(), "cpu");
  g.set_training(true);
  at::manual_seed(9);
  at::Tensor loss = g.training_loss(images(4) * 2 - 1, at::tensor(std::vector<int64_t>{0, 1, 1, 0}));
  ASSERT_EQ(loss.dim(), 0);
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  // zero-initialised output: ε_θ = 0, so the MSE part is E[ε²] ≈ 1
  EXPECT_GT(loss.item<double>(), 0.5);
  loss.backward();
  int with_grad = 0;
  for (const auto& p : g.parameters())
    if (p.grad().defined() && p.grad().abs().sum().item<double>() > 0) ++with_grad;
  EXPECT_GT(with_grad, 0);
  expect_error_contains([&] { g.training_loss(images(2), at::Tensor()); }, {"label"});
}

TEST(DdpmGenerator, AdamStepsOnTheTrainingLossReduceIt) {
  // 16 Adam steps on a fixed batch of 4 smooth images: the ε-MSE + VB loss must fall well below its initial ≈ 1
  // (zero-initialised head: ε_θ = 0). Same seed every run, so the comparison is deterministic.
  at::manual_seed(0);
  DdpmGenerator g(tiny(), "cpu");
  g.set_training(true);
  at::Tensor ramp = at::linspace(0, 1, 32).view({1, 1, 1, 32}).expand({4, 1, 32, 32}).contiguous();
  at::Tensor x0 = ramp * 2 - 1;
  at::Tensor y = at::tensor(std::vector<int64_t>{0, 1, 0, 1});
  torch::optim::Adam opt(g.parameters(), torch::optim::AdamOptions(2e-3));
  std::vector<double> losses;
  for (int step = 0; step < 16; ++step) {
    opt.zero_grad();
    at::Tensor loss = g.training_loss(x0, y);
    loss.backward();
    opt.step();
    losses.push_back(loss.item<double>());
  }
  double last = 0;
  for (int i = 12; i < 16; ++i) last += losses[i] / 4;
  std::printf("[ measured ] training loss, step 1: %.4f, mean of steps 13-16: %.4f\n", losses[0], last);
  EXPECT_GT(losses[0], 0.7);
  EXPECT_LT(last, 0.5 * losses[0]);
}

TEST(DdpmGenerator, UnsetOverridesKeepThePresetAndSetOnesWin) {
  const auto preset = DdpmGenerator(tiny(), "cpu").unet_config();
  auto o = tiny();
  o.num_classes = 0;
  o.use_scale_shift_norm = !preset.use_scale_shift_norm;
  o.num_head_channels = -1;
  o.num_heads = 2;
  const auto c = DdpmGenerator(o, "cpu").unet_config();
  EXPECT_EQ(c.num_classes, 0);
  EXPECT_EQ(c.use_scale_shift_norm, !preset.use_scale_shift_norm);
  EXPECT_EQ(c.num_head_channels, -1);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.image_size, preset.image_size);
  EXPECT_EQ(c.resblock_updown, preset.resblock_updown);
}

TEST(DdpmGenerator, PresetOverridesAreOptionalsInToml) {
  auto read = [](const std::string& body) {
    auto doc = daug::core::parse_config("[generator]\nplugin = \"ddpm\"\n" + body, "gen.toml");
    return daug::read_options<DdpmGeneratorOptions>(daug::ConfigView(doc, "generator"));
  };
  auto o = read("preset = \"tiny\"\n");
  EXPECT_FALSE(o.image_size || o.num_classes || o.num_head_channels || o.use_scale_shift_norm);
  o = read("image_size = 64\nnum_classes = 0\nresblock_updown = true\nnum_head_channels = -1\n");
  EXPECT_EQ(o.image_size, std::optional<int64_t>(64));
  EXPECT_EQ(o.num_classes, std::optional<int64_t>(0));
  EXPECT_EQ(o.resblock_updown, std::optional<bool>(true));
  EXPECT_EQ(o.num_head_channels, std::optional<int64_t>(-1));
  expect_error_contains([&] { read("image_size = 0\n"); }, {"gen.toml:3:14", "[generator].image_size must be >= 1"});
  expect_error_contains([&] { read("use_scale_shift_norm = \"true\"\n"); },
                        {"[generator].use_scale_shift_norm: expected a boolean (true/false), but got string"});
  for (const auto& info : daug::describe_options<DdpmGeneratorOptions>())
    if (info.key == "image_size" || info.key == "use_new_attention_order" || info.key == "num_classes")
      EXPECT_EQ(info.default_value, "unset") << info.key;
  // A dump of the defaults leaves the overrides out, and reads back as the same options.
  const std::string dump = daug::dump_options(o);
  EXPECT_NE(dump.find("image_size = 64\n"), std::string::npos) << dump;
  EXPECT_EQ(dump.find("num_heads"), std::string::npos) << dump;
  auto back = daug::read_options<DdpmGeneratorOptions>(
      daug::ConfigView(daug::core::parse_config("[g]\n" + dump, "dump.toml"), "g"));
  EXPECT_EQ(daug::dump_options(back), dump);
}

TEST(DdpmGenerator, ErrorsNameTheTableBeingBuilt) {
  daug::testing::TestContext ctx;
  ctx.set_table("generator_small");
  auto o = tiny();
  o.image_size = 0;
  expect_error_contains([&] { DdpmGenerator::create(o, ctx); }, {"[generator_small] (ddpm).image_size must be >= 1"});
  o = tiny();
  o.variance = "fixed_small";
  expect_error_contains([&] { DdpmGenerator::create(o, ctx); }, {"[generator_small] (ddpm): variance = \"fixed_small\""});
}

namespace {
/// The released guidance's work on a real tiny EncoderUNet: ∇ₓ log softmax(f(x_t, t))[y]·100, by autograd.
struct EncoderGuidance : daug::Guidance {
  daug::adm::EncoderUNetModel clf{daug::adm::encoder_preset("tiny"), at::kCPU};
  std::vector<std::thread::id> threads;
  at::Tensor gradient(const daug::GuidanceInput& in) override {
    threads.push_back(std::this_thread::get_id());
    at::AutoGradMode on(true);
    at::Tensor x = in.x_t.detach().requires_grad_(true);
    at::Tensor lp = at::log_softmax(clf.forward(x, in.t), 1).gather(1, in.target.view({-1, 1})).sum();
    return torch::autograd::grad({lp}, {x})[0] * 100.0;
  }
  std::string describe() const override { return "encoder guidance"; }
};
}  // namespace

TEST(DdpmGenerator, ConcurrentGuidanceGivesIdenticalHeatmapsAndRunsTheGradientOnAnotherThread) {
  at::set_num_threads(1);  // the main job's setting; each side of the concurrent step then runs 1 thread
  for (const char* encode : {"ddim", "qsample"}) {
    SCOPED_TRACE(encode);
    auto o = tiny("ddim10");
    at::manual_seed(11);
    DdpmGenerator seq(o, "cpu");
    randomize(seq.state(), 0.02);
    o.concurrent_guidance = true;
    DdpmGenerator conc(o, "cpu");
    conc.load_state(seq.state());
    at::manual_seed(12);
    EncoderGuidance guidance;
    randomize(guidance.clf.named_parameters(), 0.05);
    TranslateRequest r;
    r.x0 = images(3);
    r.label = at::ones({3}, at::kLong);
    r.target = at::tensor(std::vector<int64_t>{0, 3, 6});
    r.guidance = &guidance;
    r.noise_level = 500;
    r.encode = std::string(encode) == "ddim" ? EncodeMode::ddim_inversion : EncodeMode::q_sample;
    at::manual_seed(13);
    at::Tensor a = seq.translate(r);
    EXPECT_EQ(guidance.threads, std::vector<std::thread::id>(guidance.threads.size(), std::this_thread::get_id()));
    const size_t n_seq = guidance.threads.size();
    guidance.threads.clear();
    at::manual_seed(13);
    at::Tensor b = conc.translate(r);
    EXPECT_EQ(guidance.threads.size(), n_seq);
    for (const auto& id : guidance.threads) EXPECT_NE(id, std::this_thread::get_id());
    EXPECT_TRUE(at::equal(a, b)) << "max |diff| " << max_abs_diff(a, b);
    EXPECT_EQ(at::get_num_threads(), 1);
    r.guidance = nullptr;
    at::manual_seed(13);
    EXPECT_GT(max_abs_diff(a, seq.translate(r)), 1e-4);  // the guidance acted
  }
}

TEST(DdpmGenerator, GradientCheckpointingOptionGivesTheSameTrainingGradients) {
  auto o = tiny();
  at::manual_seed(21);
  DdpmGenerator plain(o, "cpu");
  o.gradient_checkpointing = true;
  DdpmGenerator ckpt(o, "cpu");
  ckpt.load_state(plain.state());
  const at::Tensor x0 = images(2) * 2 - 1, label = at::ones({2}, at::kLong);
  std::vector<std::vector<at::Tensor>> grads;
  for (DdpmGenerator* g : {&plain, &ckpt}) {
    g->set_training(true);
    at::manual_seed(22);  // the same t and noise draws
    g->training_loss(x0, label).backward();
    std::vector<at::Tensor> gs;
    for (const auto& p : g->parameters()) gs.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    grads.push_back(gs);
  }
  double top = 0, worst = 0;
  for (const auto& g : grads[0]) top = std::max(top, g.abs().max().item<double>());
  for (size_t i = 0; i < grads[0].size(); ++i) worst = std::max(worst, max_abs_diff(grads[0][i], grads[1][i]));
  EXPECT_GT(top, 0.0);
  EXPECT_LE(worst, 1e-5 * top);
}

// training_loss draws t and noise through daug/batch_part.h: a batch of 4 split into parts of 2+1+1 (each starting
// from the step's seed, as the Trainer runs its ranks and micro-batches) gets the whole batch's per-image draws, so
// the parts' losses weighted by their share sum to the whole batch's loss, and so do their gradients. (Before, each
// part drew its own t and noise.)
TEST(DdpmGenerator, TrainingLossOfBatchPartsIsTheWholeBatchs) {
  DdpmGenerator g(tiny(), "cpu");
  at::manual_seed(5);
  randomize(g.state(), 0.05);
  const at::Tensor x = images(4);
  const at::Tensor y = at::tensor(std::vector<int64_t>{0, 1, 1, 0});
  auto grads = [&] {
    std::vector<at::Tensor> out;
    for (const auto& p : g.parameters()) out.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    for (const auto& p : g.parameters()) p.mutable_grad() = at::Tensor();
    return out;
  };
  at::manual_seed(9);
  const at::Tensor whole = g.training_loss(x, y);
  whole.backward();
  const auto whole_grads = grads();
  double sum = 0;
  int64_t offset = 0;
  for (int64_t n : {2, 1, 1}) {
    at::manual_seed(9);
    daug::BatchPartScope part({offset, 4});
    const at::Tensor l = g.training_loss(x.narrow(0, offset, n), y.narrow(0, offset, n)) * (n / 4.0);
    l.backward();
    sum += l.item<double>();
    offset += n;
  }
  const auto part_grads = grads();
  EXPECT_NEAR(sum, whole.item<double>(), 1e-5 * whole.item<double>());
  // Relative to the largest gradient (some tensors' gradients are ~0, where float rounding dominates).
  double scale = 0, diff = 0;
  for (size_t i = 0; i < whole_grads.size(); ++i) {
    scale = std::max(scale, whole_grads[i].abs().max().item<double>());
    diff = std::max(diff, max_abs_diff(part_grads[i], whole_grads[i]));
  }
  EXPECT_GT(scale, 0.0);
  EXPECT_LT(diff / scale, 1e-5);
}
