// AdamW against a hand-computed closed form (with per-parameter decay flags) and against torch::optim::AdamW;
// EMA against its recurrence; state round trips and the errors of a bad state.
#include <daug/train/ema.h>
#include <daug/train/optimizer.h>

#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <cmath>

using namespace daug;
using namespace daug::train;

namespace {
// torch.optim.AdamW on one scalar, written out in plain double arithmetic.
struct ScalarAdamW {
  double p, m = 0, v = 0;
  int t = 0;
  void step(double g, double lr, double wd, double b1 = 0.9, double b2 = 0.999, double eps = 1e-8) {
    ++t;
    p *= 1 - lr * wd;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double mhat = m / (1 - std::pow(b1, t)), vhat = v / (1 - std::pow(b2, t));
    p -= lr * mhat / (std::sqrt(vhat) + eps);
  }
};
}  // namespace

TEST(AdamW, FirstStepByHand) {
  auto p = at::ones({1}, at::kDouble).set_requires_grad(true);
  auto q = at::ones({1}, at::kDouble).set_requires_grad(true);
  p.mutable_grad() = at::full({1}, 0.5, at::kDouble);
  q.mutable_grad() = at::full({1}, 0.5, at::kDouble);
  AdamW opt({p, q}, AdamWOptions{0.9, 0.999, 1e-8, 0.01}, {true, false});
  opt.step(0.1);
  // decayed: 1·(1 − 0.1·0.01) = 0.999; m̂ = 0.5, v̂ = 0.25 → update lr·m̂/(√v̂ + eps) = 0.1·0.5/(0.5 + 1e-8)
  const double upd = 0.1 * 0.5 / (0.5 + 1e-8);
  EXPECT_NEAR(p.item<double>(), 0.999 - upd, 1e-15);
  EXPECT_NEAR(q.item<double>(), 1.0 - upd, 1e-15);
  EXPECT_EQ(opt.steps(), 1);
  EXPECT_TRUE(opt.decays(0));
  EXPECT_FALSE(opt.decays(1));
}

TEST(AdamW, ThreeStepsMatchTheClosedFormWithDecayFlags) {
  const std::vector<double> grads = {0.5, -1.25, 0.75}, lrs = {0.1, 0.05, 0.02};
  const double wd = 0.3;
  auto p = at::full({1}, 2.0, at::kDouble).set_requires_grad(true);   // decayed
  auto q = at::full({1}, -1.0, at::kDouble).set_requires_grad(true);  // not decayed
  auto r = at::full({1}, 3.0, at::kDouble).set_requires_grad(true);   // no gradient at step 2: skipped
  AdamW opt({p, q, r}, AdamWOptions{0.9, 0.999, 1e-8, wd}, {true, false, true});
  ScalarAdamW ep{2.0}, eq{-1.0};
  double r_expect = 3.0;
  for (int s = 0; s < 3; ++s) {
    opt.zero_grad();
    EXPECT_FALSE(p.grad().defined());
    p.mutable_grad() = at::full({1}, grads[s], at::kDouble);
    q.mutable_grad() = at::full({1}, 2 * grads[s], at::kDouble);
    if (s == 0) r.mutable_grad() = at::full({1}, 1.0, at::kDouble);
    opt.step(lrs[s]);
    ep.step(grads[s], lrs[s], wd);
    eq.step(2 * grads[s], lrs[s], 0.0);
    if (s == 0) r_expect = 3.0 * (1 - 0.1 * wd) - 0.1 * 1.0 / (1.0 + 1e-8);
  }
  EXPECT_NEAR(p.item<double>(), ep.p, 1e-14);
  EXPECT_NEAR(q.item<double>(), eq.p, 1e-14);
  EXPECT_NEAR(r.item<double>(), r_expect, 1e-14);
  EXPECT_EQ(opt.steps(), 3);
}

TEST(AdamW, MatchesTorchOptimAdamW) {
  at::manual_seed(0);
  at::Tensor a = at::randn({3, 5}).requires_grad_(true);
  at::Tensor b = a.detach().clone().requires_grad_(true);
  AdamW mine({a}, AdamWOptions{0.9, 0.999, 1e-8, 0.05});
  torch::optim::AdamW ref(std::vector<at::Tensor>{b}, torch::optim::AdamWOptions(0.01).weight_decay(0.05));
  for (int s = 0; s < 5; ++s) {
    at::Tensor target = at::randn({3, 5});
    mine.zero_grad();
    (a - target).pow(3).sum().backward();
    mine.step(0.01);
    ref.zero_grad();
    (b - target).pow(3).sum().backward();
    ref.step();
  }
  EXPECT_LT(daug::testing::max_abs_diff(a.detach(), b.detach()), 1e-6);
}

TEST(AdamW, StateRoundTripAndErrors) {
  at::Tensor p = at::ones({2, 2}).requires_grad_(true);
  AdamW opt({p}, {});
  p.sum().backward();
  opt.step(0.1);
  auto st = opt.state();
  EXPECT_EQ(st[0].first, "optim.step");
  EXPECT_EQ(st[1].first, "optim.exp_avg.0");
  EXPECT_EQ(st[2].first, "optim.exp_avg_sq.0");
  at::Tensor p2 = at::zeros({2, 2}).requires_grad_(true);
  AdamW other({p2}, {});
  other.load_state(st, "mem");
  EXPECT_EQ(other.steps(), 1);
  EXPECT_EQ(daug::testing::max_abs_diff(other.state()[1].second, st[1].second), 0.0);
  AdamW wrong({at::zeros({3}).requires_grad_(true)}, {});
  daug::testing::expect_error_contains([&] { wrong.load_state(st, "ckpt.safetensors"); },
                                       {"ckpt.safetensors", "optim.exp_avg.0", "[2,2]", "[3]"});
  EXPECT_EQ(wrong.steps(), 0);  // nothing modified
  daug::testing::expect_error_contains([&] { other.load_state({}, "ckpt.safetensors"); },
                                       {"ckpt.safetensors", "optim.step", "missing"});
  NamedTensors two = st;
  two.emplace_back("optim.exp_avg.1", at::zeros({2, 2}));
  daug::testing::expect_error_contains([&] { other.load_state(two, "x"); }, {"more optimizer slots"});
  EXPECT_THROW(AdamW({p}, {}, {true, false}), daug::Error);
}

TEST(AdamW, DecayFlagsBySubstring) {
  auto w = at::zeros({2}), b = at::zeros({2}), ln = at::zeros({2});
  NamedTensors st = {{"visual.proj.weight", w}, {"visual.proj.bias", b}, {"ln_post.weight", ln}};
  EXPECT_EQ(decay_flags({w, b, ln}, st, {"bias"}), (std::vector<bool>{true, false, true}));
  daug::testing::expect_error_contains([&] { decay_flags({at::zeros({3})}, st, {"bias"}); }, {"not among"});
}

TEST(Ema, UpdateSubstituteAndState) {
  at::Tensor p = at::zeros({2}).requires_grad_(true);
  Ema ema({p}, 0.9);
  {
    at::NoGradGuard g;
    p.fill_(1.0);
  }
  ema.update();  // 0.9·0 + 0.1·1
  ema.update();  // 0.9·0.1 + 0.1·1 = 0.19
  EXPECT_NEAR(ema.shadow()[0][0].item<double>(), 0.19, 1e-7);
  at::Tensor buf = at::full({1}, 5.0);
  NamedTensors sub = ema.substitute({{"p", p}, {"buf", buf}});
  EXPECT_NEAR(sub[0].second[1].item<double>(), 0.19, 1e-7);
  EXPECT_EQ(sub[1].second.item<double>(), 5.0);
  EXPECT_EQ(ema.state()[0].first, "ema.0");
  Ema other({at::zeros({2}).requires_grad_(true)}, 0.9);
  other.load_state(ema.state(), "mem");
  EXPECT_NEAR(other.shadow()[0][1].item<double>(), 0.19, 1e-7);
  daug::testing::expect_error_contains([&] { other.load_state({}, "ck.safetensors"); }, {"ck.safetensors", "ema.0"});
  EXPECT_THROW(Ema({p}, 1.0), daug::Error);
}
