// guidance_softmax: gradients vs central finite differences (all / disease_only / auto, direction −1), scale 0,
// timesteps passed through unchanged, no .grad accumulation, errors; the real EncoderUNet end to end.
#include "softmax_guidance.h"

#include <daug/adm/unet.h>
#include <daug/error.h>

#include "test_support.h"
#include "fakes/toy_classifier.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

using daug::plugins::SoftmaxGuidance;
using daug::plugins::SoftmaxGuidanceOptions;
using daug::testing::expect_error_contains;
using daug::testing::ToyClassifier;

namespace {

/// 7 classes c0..c6 over 2×3×3 images, 6 hidden units.
std::shared_ptr<ToyClassifier> toy() { return std::make_shared<ToyClassifier>(7, 2 * 3 * 3, 6, 123); }

/// Σ_b log p_b written independently of the plugin: l_y − log Σ_j exp(l_j) over the chosen logits.
double log_prob(ToyClassifier& c, const at::Tensor& x, const at::Tensor& t, const std::vector<int64_t>& y,
                const std::string& mode) {
  at::NoGradGuard ng;
  at::Tensor l = c.logits(x, t);
  double s = 0;
  for (int64_t i = 0; i < l.size(0); ++i) {
    const bool drop = mode == "disease_only" || (mode == "auto" && y[i] != 0);
    at::Tensor row = drop ? l[i].narrow(0, 1, l.size(1) - 1) : l[i];
    const int64_t yi = drop ? y[i] - 1 : y[i];
    s += row[yi].item<double>() - std::log(row.exp().sum().item<double>());
  }
  return s;
}

void check_against_fd(const std::string& mode, std::vector<int64_t> y, int direction, double scale) {
  auto clf = toy();
  SoftmaxGuidanceOptions o;
  o.scale = scale;
  o.logits = daug::plugins::kSoftmaxLogits.value(mode);
  SoftmaxGuidance g(o, clf);
  at::manual_seed(9);
  at::Tensor x = at::randn({2, 2, 3, 3}, at::kDouble);
  at::Tensor t = at::tensor(std::vector<int64_t>{500, 730});
  at::Tensor target = at::tensor(y);
  at::NoGradGuard outer;  // the sampler runs without grad; the guidance must enable it itself
  at::Tensor grad = g.gradient({x, t, target, direction});
  ASSERT_EQ(grad.sizes(), x.sizes());
  const double h = 1e-6;
  at::Tensor flat = x.flatten();
  for (int64_t i = 0; i < flat.numel(); i += 5) {
    at::Tensor xp = x.clone(), xm = x.clone();
    xp.view(-1)[i] += h;
    xm.view(-1)[i] -= h;
    const double fd = (log_prob(*clf, xp, t, y, mode) - log_prob(*clf, xm, t, y, mode)) / (2 * h);
    EXPECT_NEAR(grad.view(-1)[i].item<double>(), direction * scale * fd, 1e-6 * std::max(1.0, scale))
        << mode << " coordinate " << i;
  }
}

}  // namespace

TEST(SoftmaxGuidance, AllLogitsMatchFiniteDifferences) { check_against_fd("all", {0, 3}, +1, 2.5); }
TEST(SoftmaxGuidance, DiseaseOnlyMatchesFiniteDifferences) { check_against_fd("disease_only", {1, 6}, +1, 100.0); }
TEST(SoftmaxGuidance, AutoIsTheReleasedCondFn) { check_against_fd("auto", {0, 4}, +1, 1.0); }
TEST(SoftmaxGuidance, DirectionMinusOneMovesAway) { check_against_fd("auto", {0, 2}, -1, 3.0); }

TEST(SoftmaxGuidance, AutoDiffersFromAllForDiseaseTargets) {
  auto clf = toy();
  SoftmaxGuidanceOptions a, b;
  a.logits = daug::plugins::SoftmaxLogits::automatic;
  b.logits = daug::plugins::SoftmaxLogits::all;
  at::Tensor x = at::randn({2, 2, 3, 3}, at::kDouble), t = at::tensor(std::vector<int64_t>{1, 2});
  at::Tensor y = at::tensor(std::vector<int64_t>{0, 5});
  at::Tensor ga = SoftmaxGuidance(a, clf).gradient({x, t, y, 1});
  at::Tensor gb = SoftmaxGuidance(b, clf).gradient({x, t, y, 1});
  EXPECT_LT(daug::testing::max_abs_diff(ga[0], gb[0]), 1e-12);  // target 0: identical
  EXPECT_GT(daug::testing::max_abs_diff(ga[1], gb[1]), 1e-6);   // target 5: No Finding logit dropped
}

TEST(SoftmaxGuidance, ScaleZeroIsZeroAndInputsAndParametersAreUntouched) {
  auto clf = toy();
  SoftmaxGuidanceOptions o;
  o.scale = 0;
  SoftmaxGuidance g(o, clf);
  at::Tensor x = at::randn({2, 2, 3, 3}, at::kDouble), keep = x.clone();
  at::Tensor t = at::tensor(std::vector<int64_t>{990, 10});
  at::Tensor out = g.gradient({x, t, at::tensor(std::vector<int64_t>{1, 0}), 1});
  EXPECT_EQ(out.abs().max().item<double>(), 0.0);
  EXPECT_EQ(daug::testing::max_abs_diff(x, keep), 0.0);
  EXPECT_FALSE(x.requires_grad());
  for (const auto& p : clf->parameters()) EXPECT_FALSE(p.grad().defined());  // autograd::grad, no accumulation
  ASSERT_EQ(clf->seen_t.size(), 1u);
  EXPECT_EQ(clf->seen_t[0][0].item<int64_t>(), 990);  // timesteps reach the classifier unchanged
  EXPECT_EQ(clf->seen_t[0][1].item<int64_t>(), 10);
}

TEST(SoftmaxGuidance, BadTargetsNameTheProblem) {
  auto clf = toy();
  SoftmaxGuidanceOptions o;
  o.logits = daug::plugins::SoftmaxLogits::disease_only;
  SoftmaxGuidance g(o, clf);
  at::Tensor x = at::randn({2, 2, 3, 3}, at::kDouble), t = at::zeros({2}, at::kLong);
  expect_error_contains([&] { g.gradient({x, t, at::tensor(std::vector<int64_t>{0, 2}), 1}); },
                        {"disease_only", "c0", ">= 1"});
  expect_error_contains([&] { g.gradient({x, t, at::tensor(std::vector<int64_t>{1, 7}), 1}); }, {"[0, 6]", "c6"});
  expect_error_contains([&] { g.gradient({x, t, at::zeros({3}, at::kLong), 1}); }, {"target must be [2]"});
  daug::testing::TestContext ctx;
  expect_error_contains([&] { SoftmaxGuidance::create(SoftmaxGuidanceOptions{}, ctx); }, {"classifier"});
  SoftmaxGuidanceOptions neg;
  neg.scale = -1;
  EXPECT_THROW(SoftmaxGuidance(neg, clf), daug::ConfigError);
}

TEST(SoftmaxGuidance, ATargetIsCheckedOnceUntilItChanges) {
  // The sampler passes one target tensor at every step: it is range-checked once (a read-back on a device) and
  // remembered; writing into it makes the next step check it again.
  auto clf = toy();
  SoftmaxGuidance g(SoftmaxGuidanceOptions{}, clf);
  at::Tensor x = at::randn({2, 2, 3, 3}, at::kDouble), t = at::zeros({2}, at::kLong);
  at::Tensor target = at::tensor(std::vector<int64_t>{1, 6});
  EXPECT_EQ(g.gradient({x, t, target, 1}).sizes(), x.sizes());
  EXPECT_EQ(g.gradient({x, t, target, 1}).sizes(), x.sizes());
  target[1] = 9;
  expect_error_contains([&] { g.gradient({x, t, target, 1}); }, {"targets must be in [0, 6]", "values in [1, 9]"});
}

namespace {
struct EncoderClassifier : daug::testing::StatelessClassifier {
  daug::adm::EncoderUNetModel net;
  EncoderClassifier() : net([] { auto c = daug::adm::encoder_preset("tiny"); c.out_channels = 7; return c; }(), at::kCPU) {}
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override { return net.forward(x, t); }
  std::vector<std::string> class_names() const override { return std::vector<std::string>(7, "k"); }
  std::vector<at::Tensor> parameters() override { return net.parameters(); }
  daug::NamedTensors state() override { return net.named_parameters(); }
  std::string describe() const override { return "encoder"; }
};
}  // namespace

TEST(SoftmaxGuidance, RealEncoderUNetDirectionalDerivative) {
  at::manual_seed(17);
  auto clf = std::make_shared<EncoderClassifier>();
  SoftmaxGuidanceOptions o;
  o.scale = 1.0;
  o.logits = daug::plugins::SoftmaxLogits::all;
  SoftmaxGuidance g(o, clf);
  at::Tensor x = at::rand({1, 1, 32, 32}), t = at::tensor(std::vector<int64_t>{250});
  at::Tensor y = at::tensor(std::vector<int64_t>{3});
  at::NoGradGuard ng;
  at::Tensor grad = g.gradient({x, t, y, 1});
  ASSERT_EQ(grad.sizes(), x.sizes());
  at::Tensor v = at::randn_like(x);
  auto f = [&](const at::Tensor& xx) { return at::log_softmax(clf->logits(xx, t), 1)[0][3].item<double>(); };
  const double h = 1e-2;
  const double fd = (f(x + h * v) - f(x - h * v)) / (2 * h);
  const double an = (grad * v).sum().item<double>();
  EXPECT_GT(std::abs(an), 1e-4);
  EXPECT_NEAR(an, fd, 0.05 * std::abs(fd) + 2e-5);  // float32 network: a loose, relative tolerance
  for (const auto& p : clf->parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(SoftmaxGuidance, ErrorsNameTheTableBeingBuilt) {
  auto clf = toy();
  daug::testing::TestContext ctx;
  ctx.add("classifier", clf);
  ctx.set_table("guidance_softmax");
  SoftmaxGuidanceOptions neg;
  neg.scale = -1;
  expect_error_contains([&] { SoftmaxGuidance::create(neg, ctx); }, {"[guidance_softmax] (softmax).scale must be >= 0"});
  EXPECT_NE(SoftmaxGuidance::create(SoftmaxGuidanceOptions{}, ctx)->describe().find("logits=auto"), std::string::npos);
}
