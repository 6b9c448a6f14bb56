// guidance_sigmoid: gradients vs central finite differences, direction −1, scale 0, no .grad accumulation, errors.
#include "sigmoid_guidance.h"

#include <daug/error.h>

#include "test_support.h"
#include "fakes/toy_classifier.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

using daug::plugins::SigmoidGuidance;
using daug::plugins::SigmoidGuidanceOptions;
using daug::testing::expect_error_contains;

namespace {

/// 4 classes ("No Finding", a, b, c) over 2×2×2 images, 5 hidden units.
std::shared_ptr<daug::testing::ToyClassifier> toy() {
  const std::vector<std::string> names = {"No Finding", "a", "b", "c"};
  return std::make_shared<daug::testing::ToyClassifier>(4, 8, 5, 321, names);
}

}  // namespace

TEST(SigmoidGuidance, MatchesFiniteDifferencesBothDirections) {
  auto clf = toy();
  SigmoidGuidanceOptions o;
  o.scale = 7.0;
  SigmoidGuidance g(o, clf);
  at::manual_seed(4);
  at::Tensor x = at::randn({3, 2, 2, 2}, at::kDouble);
  at::Tensor t = at::tensor(std::vector<int64_t>{0, 480, 999});
  std::vector<int64_t> y = {0, 2, 3};
  auto f = [&](const at::Tensor& xx) {  // Σ_b log σ(l_b,y_b) = −Σ_b log(1 + exp(−l))
    at::NoGradGuard ng;
    at::Tensor l = clf->logits(xx, t);
    double s = 0;
    for (int64_t i = 0; i < 3; ++i) s -= std::log1p(std::exp(-l[i][y[i]].item<double>()));
    return s;
  };
  for (int direction : {+1, -1}) {
    at::NoGradGuard outer;
    at::Tensor grad = g.gradient({x, t, at::tensor(y), direction});
    const double h = 1e-6;
    for (int64_t i = 0; i < x.numel(); i += 3) {
      at::Tensor xp = x.clone(), xm = x.clone();
      xp.view(-1)[i] += h;
      xm.view(-1)[i] -= h;
      EXPECT_NEAR(grad.view(-1)[i].item<double>(), direction * 7.0 * (f(xp) - f(xm)) / (2 * h), 1e-6) << i;
    }
  }
  for (const auto& p : clf->parameters()) EXPECT_FALSE(p.grad().defined());
  EXPECT_EQ(clf->seen_t[0][1].item<int64_t>(), 480);
}

TEST(SigmoidGuidance, ScaleZeroIsZeroAndClosedFormChainRule) {
  auto clf = toy();
  SigmoidGuidanceOptions o;
  o.scale = 0;
  at::Tensor x = at::randn({2, 2, 2, 2}, at::kDouble), t = at::zeros({2}, at::kLong);
  EXPECT_EQ(SigmoidGuidance(o, clf).gradient({x, t, at::ones({2}, at::kLong), 1}).abs().max().item<double>(), 0.0);
  // d/dl log σ(l) = 1 − σ(l) ≤ 1: the sigmoid gradient ignores the other logits, unlike the softmax.
  o.scale = 1;
  at::Tensor g = SigmoidGuidance(o, clf).gradient({x, t, at::ones({2}, at::kLong), 1});
  at::Tensor xg = x.clone().set_requires_grad(true);
  at::Tensor l = clf->logits(xg, t);
  at::Tensor dl = (1 - at::sigmoid(l.select(1, 1))).detach();
  (l.select(1, 1) * dl).sum().backward();  // chain rule with the closed form d/dl log σ(l) = 1 − σ(l)
  EXPECT_LT(daug::testing::max_abs_diff(g, xg.grad()), 1e-12);
}

TEST(SigmoidGuidance, BadTargetsNameTheClasses) {
  auto clf = toy();
  SigmoidGuidance g(SigmoidGuidanceOptions{}, clf);
  at::Tensor x = at::randn({1, 2, 2, 2}, at::kDouble), t = at::zeros({1}, at::kLong);
  expect_error_contains([&] { g.gradient({x, t, at::full({1}, 4, at::kLong), 1}); }, {"[0, 3]", "No Finding"});
  expect_error_contains([&] { g.gradient({x, t, at::full({1}, 0, at::kLong), 2}); }, {"direction"});
  daug::testing::TestContext ctx;
  expect_error_contains([&] { SigmoidGuidance::create(SigmoidGuidanceOptions{}, ctx); }, {"classifier"});
}

TEST(SigmoidGuidance, HalfPrecisionLogitsAreComputedInFloat32) {
  // A classifier run in half precision returns half logits; log σ on them is not even implemented for Half on CPU,
  // and would lose precision elsewhere. The guidance promotes them to float32 first (as the softmax guidance does).
  struct HalfToy : daug::testing::ToyClassifier {
    using ToyClassifier::ToyClassifier;
    at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override {
      return ToyClassifier::logits(x, t).to(at::kHalf);
    }
  };
  const std::vector<std::string> names = {"No Finding", "a", "b", "c"};
  auto half = std::make_shared<HalfToy>(4, 8, 5, 321, names);
  SigmoidGuidanceOptions o;
  o.scale = 7.0;
  at::manual_seed(4);
  at::Tensor x = at::randn({3, 2, 2, 2}, at::kDouble), t = at::tensor(std::vector<int64_t>{0, 480, 999});
  at::Tensor y = at::tensor(std::vector<int64_t>{0, 2, 3});
  at::Tensor g_half = SigmoidGuidance(o, half).gradient({x, t, y, 1});
  at::Tensor g_ref = SigmoidGuidance(o, toy()).gradient({x, t, y, 1});  // same weights (seed 321), float64
  EXPECT_EQ(g_half.sizes(), g_ref.sizes());
  // half rounding of the logits and of the gradient through the cast: ~1e-3 relative.
  EXPECT_LT(daug::testing::max_abs_diff(g_half.to(at::kDouble), g_ref), 2e-2 * g_ref.abs().max().item<double>());
}
