// Hand-computed checks of the CLIP helpers: AP@K (released and standard), retrieval mAP tables, Mann-Whitney
// AUC with ties, the two losses in closed form. (AdamW and the schedules are tested in libs/train.)
#include "clip_common.h"
#include "clip_gather.h"
#include "clip_metrics.h"
#include "clip_shard.h"

#include <daug/error.h>
#include <daug/labels.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <gtest/gtest.h>

#include <cmath>

#include "test_support.h"
#include "thread_ranks.h"

using namespace daug::clip;

namespace {
struct OneThread : ::testing::Environment {
  void SetUp() override { at::set_num_threads(1); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new OneThread);
}  // namespace

TEST(AveragePrecision, ReleasedDividesByHitsInTopK) {
  // hits at ranks 1 and 3: (1/1 + 2/3) / 2
  EXPECT_NEAR(average_precision({1, 0, 1, 0, 0}, ApKind::released), (1.0 + 2.0 / 3.0) / 2.0, 1e-12);
  // hits at ranks 2 and 5: (1/2 + 2/5) / 2 = 0.45
  EXPECT_NEAR(average_precision({0, 1, 0, 0, 1}, ApKind::released), 0.45, 1e-12);
  EXPECT_EQ(average_precision({0, 0, 0, 0, 0}, ApKind::released), 0.0);
  // AP@1 = precision@1
  EXPECT_EQ(average_precision({1}, ApKind::released), 1.0);
  // one hit at rank 3 → 1/3 (released), (1/3)/min(3, R=2) (standard)
  EXPECT_NEAR(average_precision({0, 0, 1}, ApKind::released), 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(average_precision({0, 0, 1}, ApKind::standard, 2), 1.0 / 6.0, 1e-12);
  // standard with R = 3 ≥ ... : (1 + 2/3) / min(5, 3)
  EXPECT_NEAR(average_precision({1, 0, 1, 0, 0}, ApKind::standard, 3), (1.0 + 2.0 / 3.0) / 3.0, 1e-12);
  EXPECT_EQ(average_precision({0, 0}, ApKind::standard, 0), 0.0);
}

TEST(RetrievalMap, HandWorkedExample) {
  // 3 classes. Gallery: g0={c0}, g1={c1}, g2={c0,c1}, g3={}. Queries: q0={c0}, q1={c0,c1}, q2={}.
  auto gl = at::tensor({1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0}, at::kFloat).view({4, 3});
  auto ql = at::tensor({1, 0, 0, 1, 1, 0, 0, 0, 0}, at::kFloat).view({3, 3});
  auto idx = at::tensor({3, 0, 2, 1, 2, 0, 0, 1, 2}, at::kLong).view({3, 3});
  auto row = retrieval_map(idx, ql, gl, ApKind::released, "R→I mAP@3");
  // class 0: q0 hits [0,1,1] → (1/2+2/3)/2; q1 hits [0,1,1] → same. class 1: q1 hits [1,1,0] → 1.
  const double a0 = (0.5 + 2.0 / 3.0) / 2.0;
  EXPECT_NEAR(row.values[0], a0, 1e-12);
  EXPECT_NEAR(row.values[1], 1.0, 1e-12);
  EXPECT_TRUE(std::isnan(row.values[2]));
  EXPECT_EQ(row.na[2], "no positives");
  EXPECT_EQ(row.support, (std::vector<int64_t>{2, 1, 0}));
  EXPECT_NEAR(row.avg, (a0 + 1.0) / 2.0, 1e-12);
  EXPECT_NEAR(row.wavg, (2 * a0 + 1.0) / 3.0, 1e-12);

  // standard: R(c0) = 2 (g0, g2), R(c1) = 2 → min(3,2) = 2: q0 → (1/2+2/3)/2 (same), q1 c1 → 2/2.
  auto std_row = retrieval_map(idx, ql, gl, ApKind::standard, "std");
  EXPECT_NEAR(std_row.values[0], a0, 1e-12);
  EXPECT_NEAR(std_row.values[1], 1.0, 1e-12);
}

TEST(RetrievalMap, TopKFromEmbeddings) {
  auto g = at::tensor({1.f, 0.f, 0.f, 1.f, 0.6f, 0.8f}).view({3, 2});
  auto q = at::tensor({0.f, 1.f}).view({1, 2});
  auto idx = topk_indices(q, g, 2, /*chunk=*/1);
  EXPECT_EQ(idx[0][0].item<int64_t>(), 1);
  EXPECT_EQ(idx[0][1].item<int64_t>(), 2);
  daug::testing::expect_error_contains([&] { topk_indices(q, g, 4); }, {"K must be in [1, gallery size = 3]"});
}

TEST(RocAuc, MatchesSklearnIncludingTies) {
  // sklearn's docstring example: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75
  EXPECT_NEAR(roc_auc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75, 1e-12);
  // ties: pos 0.5 vs neg 0.5 (twice) count 1/2 each; pos 0.9 beats both → (0.5+0.5+1+1)/4
  EXPECT_NEAR(roc_auc({0.5, 0.5, 0.5, 0.9}, {0, 1, 0, 1}), 0.75, 1e-12);
  EXPECT_NEAR(roc_auc({0.3, 0.3, 0.3}, {1, 0, 0}), 0.5, 1e-12);
  EXPECT_NEAR(roc_auc({0.9, 0.1}, {0, 1}), 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(roc_auc({0.1, 0.2}, {0, 0})));
}

TEST(ClassificationAuc, PerClassWithNaAndWeights) {
  // class 0: AUC 0.75 (above), support 2; class 1: all positive → n/a (no negatives); class 2: AUC 1, support 1.
  auto scores = at::tensor({0.1, 0.0, 0.1, 0.4, 0.0, 0.2, 0.35, 0.0, 0.3, 0.8, 0.0, 0.9}, at::kDouble).view({4, 3});
  auto labels = at::tensor({0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1}, at::kDouble).view({4, 3});
  auto row = classification_auc(scores, labels, "AUC");
  EXPECT_NEAR(row.values[0], 0.75, 1e-12);
  EXPECT_TRUE(std::isnan(row.values[1]));
  EXPECT_EQ(row.na[1], "no negatives");
  EXPECT_NEAR(row.values[2], 1.0, 1e-12);
  EXPECT_NEAR(row.avg, (0.75 + 1.0) / 2, 1e-12);
  EXPECT_NEAR(row.wavg, (0.75 * 2 + 1.0 * 1) / 3, 1e-12);
  // NaN labels are left out of that class: drop sample 1 of class 0 → pos {0.35,0.8} vs neg {0.1}: 1.0
  labels[1][0] = NAN;
  EXPECT_NEAR(classification_auc(scores, labels, "AUC").values[0], 1.0, 1e-12);
  auto md = markdown_table({row}, {"A", "B", "C"});
  EXPECT_NE(md.find("n/a (no negatives)"), std::string::npos) << md;
  EXPECT_NE(md.find("excluded from Avg and wAvg"), std::string::npos);
  EXPECT_NE(md.find("| AUC | 0.7500 |"), std::string::npos) << md;
  auto csv = csv_table({row}, {"A", "B", "C"});
  EXPECT_NE(csv.find("AUC,0.750000,,1.000000,0.875000,0.833333"), std::string::npos) << csv;
}

TEST(ClassificationAuc, ReleasedFloat32SigmoidTiesSaturatedScores) {
  // One class prompt c = e0 and four images at cos θ to it, s = exp(4.602) ≈ 99.69:
  //   positives cos 0.30 (logit ≈ 29.9) and 0.05 (≈ 5.0); negatives cos 0.20 (≈ 19.9) and 0.00 (0).
  // Exact ranks: pairs (0.30>0.20, 0.30>0.00, 0.05<0.20, 0.05>0.00) → AUC = 3/4.
  // Released: float32 sigmoid(29.9) = sigmoid(19.9) = 1.0 exactly (1 − e^-19.9 ≈ 1 − 2e-9 rounds to 1 in float32,
  // whose spacing below 1 is 6e-8), so that pair ties and counts 1/2 → AUC = (0.5 + 1 + 0 + 1)/4 = 0.625.
  const std::vector<double> cosines = {0.30, 0.20, 0.05, 0.00};
  auto img = at::zeros({4, 2}, at::kFloat);
  for (int64_t i = 0; i < 4; ++i) {
    img[i][0] = cosines[static_cast<size_t>(i)];
    img[i][1] = std::sqrt(1 - cosines[static_cast<size_t>(i)] * cosines[static_cast<size_t>(i)]);
  }
  auto cls = at::tensor({1.f, 0.f}).view({1, 2});
  auto labels = at::tensor({1.0, 0.0, 1.0, 0.0}, at::kDouble).view({4, 1});
  auto released = class_scores(img, cls, 4.602, true), exact = class_scores(img, cls, 4.602, false);
  EXPECT_EQ(released[0][0].item<double>(), 1.0);
  EXPECT_EQ(released[1][0].item<double>(), 1.0);
  EXPECT_NEAR(exact[0][0].item<double>(), 0.30 * std::exp(4.602), 1e-5);
  EXPECT_NEAR(classification_auc(exact, labels, "AUC (exact)").values[0], 0.75, 1e-12);
  EXPECT_NEAR(classification_auc(released, labels, "AUC").values[0], 0.625, 1e-12);
}

TEST(Losses, ClipLossClosedForm) {
  const double s = 2.0;
  auto eye = at::eye(2, at::kFloat);
  // identity pairs: every row is CE([s,0], 0) = log(1+e^{-s})
  auto l = clip_loss(eye, eye, at::scalar_tensor(s)).item<double>();
  EXPECT_NEAR(l, std::log1p(std::exp(-s)), 1e-6);
  // both reports equal image 0: t2i rows [s,0],[s,0] (targets 0,1) → log(1+e^-s), log(1+e^s); i2t rows [s,s],[0,0]
  // → log 2 each. Loss = ½[(log(1+e^-s)+log(1+e^s))/2 + log 2].
  auto t = at::tensor({1.f, 0.f, 1.f, 0.f}).view({2, 2});
  auto l2 = clip_loss(eye, t, at::scalar_tensor(s)).item<double>();
  const double expect = 0.5 * ((std::log1p(std::exp(-s)) + std::log1p(std::exp(s))) / 2 + std::log(2.0));
  EXPECT_NEAR(l2, expect, 1e-6);
}

TEST(Losses, ClassBceClosedForm) {
  auto img = at::tensor({1.f, 0.f}).view({1, 2});
  auto cls = at::eye(2, at::kFloat);
  auto y = at::tensor({1.f, 0.f}).view({1, 2});
  // logits [1, 0]: BCE(1, 1) = log(1+e^-1), BCE(0, 0) = log 2
  const double expect = (std::log1p(std::exp(-1.0)) + std::log(2.0)) / 2;
  EXPECT_NEAR(class_bce_loss(img, cls, y, at::scalar_tensor(1.0)).item<double>(), expect, 1e-6);
  daug::testing::expect_error_contains([&] { class_bce_loss(img, cls, at::ones({1, 3}), at::scalar_tensor(1.0)); },
                                       {"labels must be [B,K] = [1,2]", "[1, 3]"});
}

namespace {
// w·CLIP + (1−w)·class BCE with a fixed scale, as criterion_hybrid (which is a MODULE plugin, not linkable here).
struct TestHybrid final : daug::Criterion {
  double w, s;
  TestHybrid(double w_, double s_) : w(w_), s(s_) {}
  daug::CriterionOutput compute(const daug::CriterionInput& in) override {
    auto sc = at::scalar_tensor(s);
    auto a = clip_loss(in.image_emb, in.text_emb, sc);
    auto b = in.class_emb.defined() ? class_bce_loss(in.image_emb, in.class_emb, in.labels, sc) : at::zeros_like(a);
    return {w * a + (1 - w) * b, {{"clip", a.detach()}, {"i2c_bce", b.detach()}}};
  }
  std::string describe() const override { return "test_hybrid"; }
};
}  // namespace

TEST(GroupedCriterion, ClosedFormPerGroupContrastiveBatch) {
  // B = 4 orthonormal identity pairs, scale s = 1. One contrastive batch of 4: every CE row is
  // log(e^s / (e^s + 3)) → L = log(1 + 3e^{-s}). In groups of 2 each row only sees 1 negative: log(1 + e^{-s}).
  auto eye = at::eye(4, at::kFloat);
  TestHybrid crit(1.0, 1.0);
  at::Tensor none, y = at::zeros({4, 14});
  const auto ls = at::scalar_tensor(0.0);
  EXPECT_NEAR(grouped_criterion(crit, {eye, eye, none, y, ls}, 0).loss.item<double>(), std::log1p(3 * std::exp(-1.0)),
              1e-6);
  EXPECT_NEAR(grouped_criterion(crit, {eye, eye, none, y, ls}, 4).loss.item<double>(), std::log1p(3 * std::exp(-1.0)),
              1e-6);
  auto g2 = grouped_criterion(crit, {eye, eye, none, y, ls}, 2);
  EXPECT_NEAR(g2.loss.item<double>(), std::log1p(std::exp(-1.0)), 1e-6);
  ASSERT_EQ(g2.parts.size(), 2u);
  EXPECT_NEAR(g2.parts[0].second.item<double>(), std::log1p(std::exp(-1.0)), 1e-6);
  daug::testing::expect_error_contains([&] { grouped_criterion(crit, {eye, eye, none, y, ls}, 3); },
                                       {"4 rows", "not a multiple of contrastive_group = 3"});
}

TEST(GroupedCriterion, EqualsTheMeanOfTheLossesOfEachSliceWithGradients) {
  at::manual_seed(3);
  auto img = l2_normalize(at::randn({6, 8})).requires_grad_(), txt = l2_normalize(at::randn({6, 8}));
  auto cls = l2_normalize(at::randn({14, 8})).requires_grad_();
  auto y = (at::rand({6, 14}) > 0.5).to(at::kFloat);
  const auto ls = at::scalar_tensor(0.0);
  TestHybrid crit(0.7, 10.0);
  auto g = grouped_criterion(crit, {img, txt, cls, y, ls}, 2);
  const auto gv = torch::autograd::grad({g.loss}, {img, cls});
  const auto& gi = gv[0];
  const auto& gc = gv[1];
  // The same three slices evaluated one by one (what each of 3 DDP ranks computes), averaged.
  double want = 0, want_clip = 0;
  at::Tensor want_gi = at::zeros_like(img), want_gc = at::zeros_like(cls);
  for (int64_t k = 0; k < 3; ++k) {
    auto i = img.detach().narrow(0, 2 * k, 2).clone().requires_grad_();
    auto c = cls.detach().clone().requires_grad_();
    auto out = crit.compute({i, txt.narrow(0, 2 * k, 2), c, y.narrow(0, 2 * k, 2), ls});
    auto v = torch::autograd::grad({out.loss}, {i, c});
    want += out.loss.item<double>() / 3;
    want_clip += out.parts[0].second.item<double>() / 3;
    want_gi.narrow(0, 2 * k, 2).copy_(v[0] / 3);
    want_gc += v[1] / 3;  // DDP averages the ranks' gradients of the shared class embeddings
  }
  EXPECT_NEAR(g.loss.item<double>(), want, 1e-5);
  EXPECT_NEAR(g.parts[0].second.item<double>(), want_clip, 1e-5);
  EXPECT_LT((gi - want_gi).abs().max().item<double>(), 1e-5);
  EXPECT_LT((gc - want_gc).abs().max().item<double>(), 1e-5);
  // and it is not the loss of the whole batch as one contrastive batch
  EXPECT_GT(std::abs(crit.compute({img, txt, cls, y, ls}).loss.item<double>() - want), 1e-3);
}

TEST(Preprocess, MinmaxUint8Truncates) {
  auto m = at::tensor({0.f, 1.f, 2.f, 4.f}).view({1, 1, 2, 2});
  auto r = minmax_uint8(m).flatten();
  EXPECT_NEAR(r[1].item<double>(), 63.0 / 255.0, 1e-7);   // 63.75 → 63
  EXPECT_NEAR(r[2].item<double>(), 127.0 / 255.0, 1e-7);  // 127.5 → 127
  EXPECT_NEAR(r[3].item<double>(), 1.0, 1e-7);
  EXPECT_EQ(minmax_uint8(at::full({1, 1, 2, 2}, 3.0)).abs().sum().item<double>(), 0.0);
}

TEST(Preprocess, PixelsResizedQuantisedNormalised) {
  auto img = at::full({1, 8, 6}, 102.0f / 255.0f);  // an 8-bit gray level, as decoded
  auto x = preprocess_pixels(img, 4);
  ASSERT_EQ(x.sizes(), (at::IntArrayRef{3, 4, 4}));
  for (int c = 0; c < 3; ++c)
    EXPECT_NEAR(x[c][1][2].item<double>(), (102.0 / 255.0 - kClipMean[c]) / kClipStd[c], 1e-5);
  daug::testing::expect_error_contains([&] { preprocess_pixels(at::zeros({2, 4, 4}), 4); }, {"[3,H,W]", "[2, 4, 4]"});
  auto h = resize_heatmap(at::rand({10, 12}), 5);
  EXPECT_EQ(h.sizes(), (at::IntArrayRef{1, 5, 5}));
}

TEST(Preprocess, HeatmapQuantisedAtNativeSizeThenResizedAsReleased) {
  // An 8×8 heatmap with one spike, prepared for a 4×4 CLIP input. The expected 8-bit values were written by the
  // released steps in Python (numpy 1.24, Pillow 9.4):
  //   x = (h - h.min()) / (h.max() - h.min()); x = np.uint8(x * 255)                       # daug/mimic.py:191-199
  //   Image.fromarray(x).convert('RGB').resize((4, 4), resample=Image.BICUBIC, reducing_gap=None)  # CLIPImageProcessor
  auto h = at::zeros({8, 8}, at::kFloat);
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) h[i][j] = static_cast<float>((i * 8 + j) * 37 % 64) / 64.0f;
  h[2][5] = 10.0f;
  const std::vector<int> pil = {9, 12, 28, 12, 13, 9, 59, 27, 9, 12, 7, 12, 15, 13, 9, 13};
  auto got = quantize_resize_heatmap(h, 4);
  ASSERT_EQ(got.sizes(), (at::IntArrayRef{1, 4, 4}));
  for (int64_t k = 0; k < 16; ++k) {
    const double v = got[0][k / 4][k % 4].item<double>() * 255.0;
    EXPECT_NEAR(v, std::round(v), 1e-3) << "pixel " << k << " is not on the 8-bit grid";
    // PIL resizes in fixed point; the float kernel may round the other way on a half.
    EXPECT_NEAR(v, pil[static_cast<size_t>(k)], 1.0 + 1e-6) << "pixel " << k;
  }
  // The spike pixel: 59/255 as released. Resizing first and min-maxing after (the old order) stretched it to 1.
  EXPECT_NEAR(got[0][1][2].item<double>() * 255.0, 59.0, 1.0 + 1e-6);
  EXPECT_EQ(minmax_uint8(resize_heatmap(h, 4).unsqueeze(0)).max().item<double>(), 1.0);
  // [C,H,W] uses channel 0; a constant map is 0 everywhere.
  EXPECT_EQ(quantize_resize_heatmap(at::full({2, 8, 8}, 3.0), 4).abs().max().item<double>(), 0.0);
}

TEST(Labels, NanBecomesNegativeAndIsCounted) {
  std::vector<float> a = {1, NAN, 0}, b = {0, 1, NAN};
  int64_t nans = 0;
  auto t = labels_tensor({&a, &b}, &nans);
  EXPECT_EQ(nans, 2);
  EXPECT_EQ(t[0][1].item<float>(), 0.f);
  EXPECT_EQ(t[1][1].item<float>(), 1.f);
}

// The 14 prompts, character for character, as REFERENCE.md §1.3 lists them from the released daug/main.py:37-55
// (label_bce=True). The trailing '.' is inconsistent in the release and is kept verbatim: it changes the BPE ids.
TEST(Prompts, EqualTheReleasedListCharacterForCharacter) {
  const std::vector<std::string> expected = {
      "A chest-xray image of enlarged cardiomediastinum.",
      "A chest-xray image of cardiomegaly.",
      "A chest-xray image of lung opacity",
      "A chest-xray image of lung lesion.",
      "A chest-xray image of edema",
      "A chest-xray image of consolidation",
      "A chest-xray image of pneumonia",
      "A chest-xray image of atelectasis",
      "A chest-xray image of pneumothorax",
      "A chest-xray image of pleural effusion",
      "A chest-xray image of other pleural diseases",
      "A chest-xray image of rib fracture",
      "A chest-xray image of support devices",
      "A healthy chest-xray image with no findings.",
  };
  const auto& got = released_prompts();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "prompt " << i << " (" << daug::kChexpertClasses[i] << ")";
}

// gather = "global": 2 ranks that each hold 3 of 6 pairs, all-gather their embeddings with gradient and compute the
// same CLIP loss over all 6; the loss is the single process's and the gradients of each rank's rows, weighted 1/2
// as the Trainer weights a whole-batch loss, are the single process's rows of the gradient. Single process: x itself.
TEST(ClipGather, GatheredLossAndGradientsAreTheSingleProcesss) {
  at::manual_seed(1);
  const at::Tensor img = at::randn({6, 4}), txt = at::randn({6, 4});
  const at::Tensor scale = at::scalar_tensor(10.0);
  at::Tensor a = img.clone().requires_grad_(true), b = txt.clone().requires_grad_(true);
  const at::Tensor loss = clip_loss(l2_normalize(a), l2_normalize(b), scale);
  loss.backward();
  std::vector<at::Tensor> ga(2), gb(2), losses(2);
  daug::testing::run_thread_ranks(2, [&](int r) {
    at::Tensor ai = img.narrow(0, 3 * r, 3).clone().requires_grad_(true);
    at::Tensor bi = txt.narrow(0, 3 * r, 3).clone().requires_grad_(true);
    auto& comm = daug::communicator();
    const at::Tensor all_a = all_gather_rows(l2_normalize(ai), comm, "test");
    const at::Tensor all_b = all_gather_rows(l2_normalize(bi), comm, "test");
    const at::Tensor l = clip_loss(all_a, all_b, scale);
    (l * 0.5).backward();
    ga[static_cast<size_t>(r)] = ai.grad();
    gb[static_cast<size_t>(r)] = bi.grad();
    losses[static_cast<size_t>(r)] = l.detach();
  });
  for (int r = 0; r < 2; ++r) EXPECT_NEAR(losses[static_cast<size_t>(r)].item<double>(), loss.item<double>(), 1e-6);
  EXPECT_TRUE(at::cat(ga).allclose(a.grad(), 1e-5, 1e-7));
  EXPECT_TRUE(at::cat(gb).allclose(b.grad(), 1e-5, 1e-7));
  EXPECT_GT(a.grad().abs().max().item<double>(), 1e-3);  // a real gradient, not zeros on both sides
  const at::Tensor x = at::ones({2, 3});
  EXPECT_TRUE(all_gather_rows(x, daug::communicator(), "single").is_same(x));
}

// Issue 11: the shards of a distributed embedding cover every item once, in order, padded as DistributedSampler.
TEST(ClipShard, ShardsCoverEveryItemInOrderPaddedWithTheFirstItems) {
  EXPECT_EQ(daug::clip::embed_shard(5, 0, 1), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(daug::clip::embed_shard(5, 0, 2), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(daug::clip::embed_shard(5, 1, 2), (std::vector<int64_t>{3, 4, 0}));
  EXPECT_EQ(daug::clip::embed_shard(2, 2, 3), (std::vector<int64_t>{0}));  // fewer items than ranks
  EXPECT_TRUE(daug::clip::embed_shard(0, 1, 2).empty());
  for (int64_t n : {1, 7, 8, 9, 20})
    for (int world : {1, 2, 3, 4}) {
      std::vector<int64_t> all;
      for (int r = 0; r < world; ++r) {
        const auto s = daug::clip::embed_shard(n, r, world);
        EXPECT_EQ(s.size(), static_cast<size_t>((n + world - 1) / world)) << n << " " << world;
        all.insert(all.end(), s.begin(), s.end());
      }
      all.resize(static_cast<size_t>(n));  // what gather_shards keeps
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(all[static_cast<size_t>(i)], i);
    }
  EXPECT_EQ(daug::clip::shard_of(std::vector<std::string>{"a", "b", "c"}, 1, 2), (std::vector<std::string>{"c", "a"}));
}
