#include "hybrid_criterion.h"

#include "clip_common.h"
#include "test_support.h"
#include "fakes/fake_backbone.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

using daug::plugins::HybridCriterion;

namespace {
struct Batch {
  at::Tensor img = daug::clip::l2_normalize(at::randn({4, 6}));
  at::Tensor txt = daug::clip::l2_normalize(at::randn({4, 6}));
  at::Tensor cls = daug::clip::l2_normalize(at::randn({3, 6}));
  at::Tensor y = (at::rand({4, 3}) > 0.5).to(at::kFloat);
  at::Tensor ls = at::scalar_tensor(std::log(1 / 0.07));
};
}  // namespace

TEST(HybridCriterion, EndpointsAreClipAndBce) {
  at::set_num_threads(1);
  at::manual_seed(3);
  Batch b;
  daug::CriterionInput in{b.img, b.txt, b.cls, b.y, b.ls};
  const double s = std::exp(4.602);
  const double clip = daug::clip::clip_loss(b.img, b.txt, at::scalar_tensor(s)).item<double>();
  const double bce = daug::clip::class_bce_loss(b.img, b.cls, b.y, at::scalar_tensor(s)).item<double>();
  EXPECT_NEAR(HybridCriterion({1.0}).compute(in).loss.item<double>(), clip, 1e-5);
  EXPECT_NEAR(HybridCriterion({0.0}).compute(in).loss.item<double>(), bce, 1e-5);
  auto out = HybridCriterion({0.7}).compute(in);
  EXPECT_NEAR(out.loss.item<double>(), 0.7 * clip + 0.3 * bce, 1e-4);
  ASSERT_EQ(out.parts.size(), 2u);
  EXPECT_TRUE(HybridCriterion({}).needs_class_embeddings());
}

TEST(HybridCriterion, BceByHand) {
  // one image = class 0 direction, s_c = e^0 = 1: logits [1, 0]; labels [1, 0] → (log(1+e^-1) + log 2)/2
  auto img = at::tensor({1.f, 0.f}).view({1, 2});
  auto cls = at::eye(2, at::kFloat);
  auto y = at::tensor({1.f, 0.f}).view({1, 2});
  auto ls = at::scalar_tensor(0.0);
  daug::CriterionInput in{img, img, cls, y, ls};
  HybridCriterion h({0.0, daug::clip::ScaleMode::fixed, 4.602, daug::clip::ScaleMode::fixed, 0.0});
  EXPECT_NEAR(h.compute(in).loss.item<double>(), (std::log1p(std::exp(-1.0)) + std::log(2.0)) / 2, 1e-6);
}

TEST(HybridCriterion, GradientsReachBothTowers) {
  at::manual_seed(0);
  daug::testing::FakeBackbone bb(8, 16, 24);
  auto pix = at::randn({3, 3, 16, 16});
  auto tok = bb.tokenize({"left effusion", "normal", "cardiomegaly"});
  auto prompts = bb.tokenize(daug::clip::released_prompts());
  auto img = daug::clip::l2_normalize(bb.encode_image(pix));
  auto txt = daug::clip::l2_normalize(bb.encode_text(tok));
  auto cls = daug::clip::l2_normalize(bb.encode_text(prompts));
  auto y = at::zeros({3, 14});
  y[0][9] = 1;
  y[1][13] = 1;
  y[2][1] = 1;
  auto ls = bb.logit_scale();
  // w = 0: only the class term — the text tower still gets a gradient through the prompt embeddings.
  auto loss = HybridCriterion({0.0}).compute({img, txt, cls, y, ls}).loss;
  loss.backward();
  ASSERT_TRUE(bb.img_->weight.grad().defined());
  ASSERT_TRUE(bb.txt_->weight.grad().defined());
  EXPECT_GT(bb.img_->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(bb.txt_->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(bb.emb_->weight.grad().abs().sum().item<double>(), 0.0);
  daug::testing::expect_error_contains([&] { HybridCriterion({1.5}); }, {"[criterion].w must be in [0, 1]"});
  daug::testing::TestContext ctx;
  ctx.set_table("clip_criterion");
  daug::testing::expect_error_contains([&] { HybridCriterion::create({1.5}, ctx); },
                                       {"[clip_criterion].w must be in [0, 1], but got 1.5"});
  at::Tensor undef;
  daug::testing::expect_error_contains([&] { HybridCriterion({}).compute({img, txt, undef, y, ls}); },
                                       {"class-prompt embeddings"});
}
