// guidance_sigmoid: gradients vs central finite differences, direction −1, scale 0, no .grad accumulation, errors.
#include "sigmoid_guidance.h"

#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

using daug::plugins::SigmoidGuidance;
using daug::plugins::SigmoidGuidanceOptions;
using daug::testing::expect_error_contains;

namespace {

struct Threads {
  Threads() { at::set_num_threads(1); }
} threads_once;

/// logits = W2 · tanh(W1 · vec(x) + b + w_t · t/1000), float64.
struct ToyClassifier : daug::Classifier {
  at::Tensor W1, b, wt, W2;
  std::vector<int64_t> seen_t;
  ToyClassifier() {
    at::manual_seed(321);
    W1 = at::randn({5, 8}, at::kDouble).set_requires_grad(true);
    b = at::randn({5}, at::kDouble).set_requires_grad(true);
    wt = at::randn({5}, at::kDouble).set_requires_grad(true);
    W2 = at::randn({4, 5}, at::kDouble).set_requires_grad(true);
  }
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override {
    for (int64_t i = 0; i < t.size(0); ++i) seen_t.push_back(t[i].item<int64_t>());
    return at::matmul(at::tanh(at::matmul(x.flatten(1), W1.t()) + b + t.to(at::kDouble).unsqueeze(1) / 1000.0 * wt),
                      W2.t());
  }
  std::vector<std::string> class_names() const override { return {"No Finding", "a", "b", "c"}; }
  std::vector<at::Tensor> parameters() override { return {W1, b, wt, W2}; }
  daug::NamedTensors state() override { return {}; }
  void load_state(const daug::NamedTensors&) override {}
  void set_training(bool) override {}
  std::string describe() const override { return "toy"; }
};

}  // namespace

TEST(SigmoidGuidance, MatchesFiniteDifferencesBothDirections) {
  auto clf = std::make_shared<ToyClassifier>();
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
  EXPECT_EQ(clf->seen_t[1], 480);
}

TEST(SigmoidGuidance, ScaleZeroIsZeroAndClosedFormChainRule) {
  auto clf = std::make_shared<ToyClassifier>();
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
  auto clf = std::make_shared<ToyClassifier>();
  SigmoidGuidance g(SigmoidGuidanceOptions{}, clf);
  at::Tensor x = at::randn({1, 2, 2, 2}, at::kDouble), t = at::zeros({1}, at::kLong);
  expect_error_contains([&] { g.gradient({x, t, at::full({1}, 4, at::kLong), 1}); }, {"[0, 3]", "No Finding"});
  expect_error_contains([&] { g.gradient({x, t, at::full({1}, 0, at::kLong), 2}); }, {"direction"});
  daug::testing::TestContext ctx;
  expect_error_contains([&] { SigmoidGuidance::create(SigmoidGuidanceOptions{}, ctx); }, {"classifier"});
}
