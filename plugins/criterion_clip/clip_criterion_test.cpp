#include "clip_criterion.h"

#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

using daug::plugins::ClipCriterion;

TEST(ClipCriterion, IdentityPairsClosedForm) {
  at::set_num_threads(1);
  auto eye = at::eye(2, at::kFloat);
  at::Tensor undef;
  auto ls = at::scalar_tensor(std::log(2.0));
  daug::CriterionInput in{eye, eye, undef, undef, ls};
  // fixed s = exp(log 2) = 2 → log(1 + e^{-2})
  ClipCriterion fixed({daug::clip::ScaleMode::fixed, std::log(2.0)});
  EXPECT_NEAR(fixed.compute(in).loss.item<double>(), std::log1p(std::exp(-2.0)), 1e-6);
  // released default s = exp(4.602) = 99.69: log(1 + e^{-99.69}) ≈ 0
  ClipCriterion dflt({});
  EXPECT_NEAR(dflt.compute(in).loss.item<double>(), 0.0, 1e-12);
  // backbone scale, and its gradient: d/d(ls) log(1+e^{-e^ls}) = −s·e^{-s}/(1+e^{-s})
  auto lsg = at::scalar_tensor(std::log(2.0)).set_requires_grad(true);
  daug::CriterionInput in2{eye, eye, undef, undef, lsg};
  ClipCriterion learned({daug::clip::ScaleMode::backbone, 0.0});
  auto out = learned.compute(in2);
  EXPECT_NEAR(out.loss.item<double>(), std::log1p(std::exp(-2.0)), 1e-6);
  out.loss.backward();
  EXPECT_NEAR(lsg.grad().item<double>(), -2.0 * std::exp(-2.0) / (1 + std::exp(-2.0)), 1e-6);
  ASSERT_EQ(out.parts.size(), 1u);
  EXPECT_EQ(out.parts[0].first, "clip");
}

TEST(ClipCriterion, ScaleIsClampedToLn100) {
  auto eye = at::eye(2, at::kFloat);
  at::Tensor undef;
  auto huge = at::scalar_tensor(10.0);
  daug::CriterionInput in{eye, -eye, undef, undef, huge};
  // T = −I: t2i logits s·[[−1,0],[0,−1]] → CE = log(1+e^{s}) − (−s)... = −(−s) + log(e^{−s}+1) = s + log(1+e^{−s})
  ClipCriterion learned({daug::clip::ScaleMode::backbone, 0.0});
  EXPECT_NEAR(learned.compute(in).loss.item<double>(), 100.0 + std::log1p(std::exp(-100.0)), 1e-3);
}
