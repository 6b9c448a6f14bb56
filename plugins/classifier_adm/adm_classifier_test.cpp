// classifier_adm: super-classes from the data source, released parameter count, shapes, gradients, checkpoints.
#include "adm_classifier.h"

#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/precision.h>
#include <daug/source.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

using daug::plugins::AdmClassifier;
using daug::plugins::AdmClassifierOptions;
using daug::testing::expect_error_contains;
using daug::testing::max_abs_diff;

namespace {

struct FakeSource : daug::Source {
  std::vector<daug::Sample> s;
  daug::SuperClassGrouping g = daug::SuperClassGrouping::released();
  const std::vector<daug::Sample>& samples() const override { return s; }
  const daug::SuperClassGrouping& superclasses() const override { return g; }
  std::string describe() const override { return "fake"; }
};

AdmClassifierOptions tiny() {
  AdmClassifierOptions o;
  o.preset = "tiny";
  return o;
}

}  // namespace

TEST(AdmClassifier, OutputsTheSourceSuperClasses) {
  daug::testing::TestContext ctx;
  ctx.add("data", std::make_shared<FakeSource>());
  auto clf = AdmClassifier::create(tiny(), ctx);
  auto names = clf->class_names();
  ASSERT_EQ(names.size(), 7u);
  EXPECT_EQ(names[0], "No Finding");
  at::manual_seed(0);
  at::Tensor x = at::rand({3, 1, 32, 32});
  at::Tensor logits = clf->logits(x, at::tensor(std::vector<int64_t>{0, 500, 999}));
  EXPECT_EQ(logits.sizes(), (at::IntArrayRef{3, 7}));
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  // differentiable w.r.t. x_t
  at::Tensor xg = x.clone().set_requires_grad(true);
  clf->logits(xg, at::tensor(std::vector<int64_t>{1, 2, 3})).select(1, 2).sum().backward();
  EXPECT_GT(xg.grad().abs().sum().item<double>(), 0.0);
  // the timestep matters (timestep-conditioned) once the zero-initialised ResBlock output convs are trained
  at::NoGradGuard ng;
  for (const auto& [k, v] : clf->state()) {
    at::Tensor p = v;
    if (k.find("out_layers.3") != std::string::npos) p.normal_(0, 0.05);
  }
  EXPECT_GT(max_abs_diff(clf->logits(x, at::full({3}, 10, at::kLong)), clf->logits(x, at::full({3}, 900, at::kLong))),
            0.0);
}

TEST(AdmClassifier, ReleasedConfigurationHas5410247Parameters) {
  daug::testing::TestContext ctx;
  ctx.add("data", std::make_shared<FakeSource>());
  AdmClassifierOptions o;  // defaults = released daug512, K = 7 from the grouping
  auto clf = AdmClassifier::create(o, ctx);
  EXPECT_EQ(std::static_pointer_cast<AdmClassifier>(clf)->num_parameters(), 5410247);
}

TEST(AdmClassifier, ErrorsNameTheProblem) {
  daug::testing::TestContext ctx;
  auto o = tiny();
  o.data = "dataset";
  expect_error_contains([&] { AdmClassifier::create(o, ctx); }, {"dataset"});
  AdmClassifier clf(tiny(), {"a", "b"}, "cpu");
  expect_error_contains([&] { clf.logits(at::rand({2, 1, 64, 64}), at::zeros({2}, at::kLong)); },
                        {"[N, 1, 32, 32]", "[2, 1, 64, 64]"});
  expect_error_contains([&] { clf.logits(at::rand({2, 1, 32, 32}), at::zeros({3}, at::kLong)); }, {"t must be [2]"});
  EXPECT_THROW(AdmClassifier(tiny(), {"only"}, "cpu"), daug::ConfigError);
  auto bad = tiny();
  bad.width = 48;
  expect_error_contains([&] { AdmClassifier(bad, {"a", "b"}, "cpu"); }, {"[classifier]", "GroupNorm32"});
}

TEST(AdmClassifier, CheckpointRoundTripAndShapeMismatch) {
  daug::testing::TempDir dir;
  at::manual_seed(1);
  AdmClassifier a(tiny(), {"a", "b", "c"}, "cpu");
  daug::save_safetensors(dir / "clf.safetensors", a.state());
  at::manual_seed(2);
  AdmClassifier b(tiny(), {"a", "b", "c"}, "cpu");
  at::Tensor x = at::rand({2, 1, 32, 32}), t = at::tensor(std::vector<int64_t>{3, 300});
  at::NoGradGuard ng;
  EXPECT_GT(max_abs_diff(a.logits(x, t), b.logits(x, t)), 0.0);
  b.load_state(daug::load_safetensors(dir / "clf.safetensors").tensors);
  EXPECT_EQ(max_abs_diff(a.logits(x, t), b.logits(x, t)), 0.0);
  AdmClassifier seven(tiny(), {"1", "2", "3", "4", "5", "6", "7"}, "cpu");
  expect_error_contains([&] { seven.load_state(a.state()); }, {"out.2.c_proj.weight", "[3, 64, 1]", "[7, 64, 1]"});
}

TEST(AdmClassifier, UnsetOverridesKeepThePresetAndErrorsNameTheTable) {
  const auto preset = AdmClassifier(tiny(), {"a", "b"}, "cpu").config();
  auto o = tiny();
  o.pool = "adaptive";
  o.resblock_updown = !preset.resblock_updown;
  const auto c = AdmClassifier(o, {"a", "b"}, "cpu").config();
  EXPECT_EQ(c.pool, "adaptive");
  EXPECT_EQ(c.resblock_updown, !preset.resblock_updown);
  EXPECT_EQ(c.use_scale_shift_norm, preset.use_scale_shift_norm);
  EXPECT_EQ(c.num_head_channels, preset.num_head_channels);
  EXPECT_EQ(c.model_channels, preset.model_channels);
  for (const auto& info : daug::describe_options<AdmClassifierOptions>())
    if (info.key == "pool" || info.key == "width" || info.key == "resblock_updown")
      EXPECT_EQ(info.default_value, "unset") << info.key;

  daug::testing::TestContext ctx;
  ctx.add("data", std::make_shared<FakeSource>());
  ctx.set_table("classifier_small");
  auto bad = tiny();
  bad.width = 48;
  expect_error_contains([&] { AdmClassifier::create(bad, ctx); }, {"[classifier_small] (adm_classifier)", "GroupNorm32"});
  bad = tiny();
  bad.pool = "max";
  expect_error_contains([&] { AdmClassifier::create(bad, ctx); },
                        {"[classifier_small] (adm_classifier).pool must be one of: attention, adaptive, but got 'max'"});
}

// The guidance classifier under bf16 autocast (what the heatmaps stage does around translate): its convolutions
// run in bf16, the logits and the gradient w.r.t. x_t come back float32 and close to the fp32 ones (independent
// fact: the same model in fp32). Pearson >= 0.99 on the logits and the input gradient.
TEST(AdmClassifier, Bf16AutocastLogitsAndGradientStayFloat32AndClose) {
  daug::testing::TestContext ctx;
  ctx.add("data", std::make_shared<FakeSource>());
  auto clf = AdmClassifier::create(tiny(), ctx);
  at::manual_seed(3);
  for (auto& [name, p] : clf->state()) {
    at::NoGradGuard g;
    p.normal_(0, 0.1);  // away from the zero-initialised output head, so the logits carry the whole network
  }
  const at::Tensor x = at::rand({4, 1, 32, 32}), t = at::tensor(std::vector<int64_t>{0, 200, 500, 900});
  auto run = [&](daug::Precision p) {
    at::Tensor xg = x.clone().set_requires_grad(true);
    at::Tensor logits;
    {
      daug::AutocastGuard autocast(p, "cpu");
      logits = clf->logits(xg, t);
    }
    at::log_softmax(logits, 1).select(1, 0).sum().backward();
    return std::make_pair(logits.detach(), xg.grad());
  };
  auto [l32, g32] = run(daug::Precision::fp32);
  auto [l16, g16] = run(daug::Precision::bf16);
  EXPECT_EQ(l16.scalar_type(), at::kFloat);
  EXPECT_EQ(g16.scalar_type(), at::kFloat);
  EXPECT_GT(max_abs_diff(l32, l16), 0.0) << "autocast had no effect";
  auto pearson = [](const at::Tensor& a, const at::Tensor& b) {
    const at::Tensor da = a.flatten().to(at::kDouble) - a.to(at::kDouble).mean();
    const at::Tensor db = b.flatten().to(at::kDouble) - b.to(at::kDouble).mean();
    return ((da * db).sum() / ((da * da).sum() * (db * db).sum()).sqrt()).item<double>();
  };
  EXPECT_GE(pearson(l32, l16), 0.99);
  EXPECT_GE(pearson(g32, g16), 0.99);
}
