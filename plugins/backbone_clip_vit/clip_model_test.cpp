// clip_vit model: parameter counts (REFERENCE §0.6 / §4.1), OpenAI key names, attention against LibTorch's
// nn::MultiheadAttention, positional resampling closed forms, gradients through both towers, input errors.
#include "clip_model.h"
#include "clip_vit.h"

#include <daug/error.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <test_support.h>
#include <torch/nn/modules/activation.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <cmath>
#include <set>

namespace daug::plugins::clip {
namespace {

ClipVitOptions tiny_options() {
  ClipVitOptions o;
  o.preset = "tiny";
  o.image_size = 32;
  o.context_length = 16;
  o.vocab = DAUG_CLIP_VOCAB_FILE;
  return o;
}

class ClipModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    torch::manual_seed(0);
  }
};

TEST_F(ClipModelTest, VitB32ParameterCountIsOpenAIs) {
  ClipArch a = clip_preset("vit_b32");
  ClipModel m(a);
  EXPECT_EQ(count_parameters(*m->visual), 87849216);
  EXPECT_EQ(count_parameters(*m), 151277313);
  a.image_size = 256;
  a.context_length = 154;
  ClipModel m256(a);
  EXPECT_EQ(count_parameters(*m256->visual), 87860736);
  EXPECT_EQ(count_parameters(*m256) - count_parameters(*m256->visual) - 1, 63467520);
}

TEST_F(ClipModelTest, ParameterNamesAreOpenAIKeys) {
  ClipModel m(clip_preset("tiny"));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : m->named_parameters(true)) shapes[p.key()] = p.value().sizes().vec();
  // tiny: vision width 64, patch 8, grid 4; text width 64, ctx 16; embed 32; 2 layers each.
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"visual.conv1.weight", {64, 3, 8, 8}},
      {"visual.class_embedding", {64}},
      {"visual.positional_embedding", {17, 64}},
      {"visual.ln_pre.weight", {64}},
      {"visual.ln_post.bias", {64}},
      {"visual.proj", {64, 32}},
      {"visual.transformer.resblocks.1.attn.in_proj_weight", {192, 64}},
      {"visual.transformer.resblocks.1.attn.in_proj_bias", {192}},
      {"visual.transformer.resblocks.0.attn.out_proj.weight", {64, 64}},
      {"visual.transformer.resblocks.0.mlp.c_fc.weight", {256, 64}},
      {"visual.transformer.resblocks.0.mlp.c_proj.weight", {64, 256}},
      {"visual.transformer.resblocks.0.ln_2.weight", {64}},
      {"transformer.resblocks.1.attn.in_proj_weight", {192, 64}},
      {"token_embedding.weight", {49408, 64}},
      {"positional_embedding", {16, 64}},
      {"ln_final.weight", {64}},
      {"text_projection", {64, 32}},
      {"logit_scale", {}}};
  for (const auto& [k, s] : expected) {
    ASSERT_TRUE(shapes.count(k)) << "missing " << k;
    EXPECT_EQ(shapes[k], s) << k;
  }
  // 2 towers × 2 blocks × 12 tensors + 8 vision + 6 text/top-level tensors.
  EXPECT_EQ(shapes.size(), 2u * 2u * 12u + 8u + 6u);
  EXPECT_FALSE(shapes.count("visual.conv1.bias"));  // conv1 has no bias
}

TEST_F(ClipModelTest, AttentionEqualsLibTorchMultiheadAttention) {
  const int64_t D = 16, H = 4, N = 3, L = 5;
  Attention mine(D, H);
  torch::nn::MultiheadAttention ref(torch::nn::MultiheadAttentionOptions(D, H));
  {
    at::NoGradGuard ng;
    mine->in_proj_weight.normal_();
    mine->in_proj_bias.normal_();
    mine->out_proj->weight.normal_();
    mine->out_proj->bias.normal_();
    ref->in_proj_weight.copy_(mine->in_proj_weight);
    ref->in_proj_bias.copy_(mine->in_proj_bias);
    ref->out_proj->weight.copy_(mine->out_proj->weight);
    ref->out_proj->bias.copy_(mine->out_proj->bias);
  }
  at::Tensor x = at::randn({N, L, D});
  at::Tensor mask = at::full({L, L}, -std::numeric_limits<float>::infinity()).triu(1);
  for (bool masked : {false, true}) {
    at::Tensor m = masked ? mask : at::Tensor();
    at::Tensor xl = x.transpose(0, 1);  // LND, as OpenAI CLIP calls nn.MultiheadAttention
    at::Tensor want = std::get<0>(ref->forward(xl, xl, xl, {}, false, m)).transpose(0, 1);
    // float32 with N(0,1) weights: outputs reach tens, so allow ~8 ulp of the largest output (the SIMD path, AVX2 or
    // AVX-512, changes the rounding: 1.9e-5 was measured on an AVX2 machine for outputs of magnitude ~30).
    const double tol = 1e-6 * std::max(1.0, want.abs().max().item<double>());
    EXPECT_LT(testing::max_abs_diff(mine->forward(x, m), want), tol) << "masked=" << masked;
  }
}

TEST_F(ClipModelTest, ResampleToSameSizeIsIdentity) {
  at::Tensor pos = at::randn({1 + 7 * 7, 8});
  EXPECT_TRUE(resample_positions(pos, 1, 7, 7, 7, 7).equal(pos));
  at::Tensor text = at::randn({77, 8});
  EXPECT_TRUE(resample_positions(text, 0, 1, 77, 1, 77).equal(text));
}

TEST_F(ClipModelTest, ResampleConstantStaysConstantAndClassTokenKept) {
  at::Tensor pos = at::full({1 + 49, 3}, 2.5);
  pos[0] = at::tensor({-1.f, 7.f, 3.f});
  at::Tensor out = resample_positions(pos, 1, 7, 7, 8, 8);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{65, 3}));
  EXPECT_TRUE(out[0].equal(pos[0]));
  EXPECT_LT((out.slice(0, 1) - 2.5).abs().max().item<double>(), 1e-5);
  at::Tensor text = at::full({77, 4}, -0.75);
  at::Tensor t2 = resample_positions(text, 0, 1, 77, 1, 154);
  ASSERT_EQ(t2.sizes(), (std::vector<int64_t>{154, 4}));
  EXPECT_LT((t2 + 0.75).abs().max().item<double>(), 1e-5);
}

TEST_F(ClipModelTest, ResampleLinearRampClosedForm) {
  // f(r, c) = r + 10c on the 7x7 grid. AA bicubic (a = -0.5 PIL kernel, align_corners=False) reproduces linear
  // functions where no tap falls outside the grid: output (i, j) = f(u_i, u_j), u = (i + 0.5)·7/8 − 0.5.
  at::Tensor pos = at::zeros({50, 1});
  for (int r = 0; r < 7; ++r)
    for (int c = 0; c < 7; ++c) pos[1 + r * 7 + c][0] = r + 10.0 * c;
  at::Tensor out = resample_positions(pos, 1, 7, 7, 8, 8).slice(0, 1).reshape({8, 8});
  // Bilinear reproduces linear functions too. (Plain bicubic uses Keys' a = -0.75, which does not.)
  for (PosInterp mode : {PosInterp::bilinear}) {
    at::Tensor o = resample_positions(pos, 1, 7, 7, 8, 8, mode).slice(0, 1).reshape({8, 8});
    for (int i = 2; i <= 5; ++i)
      for (int j = 2; j <= 5; ++j) {
        double ui = (i + 0.5) * 7.0 / 8.0 - 0.5, uj = (j + 0.5) * 7.0 / 8.0 - 0.5;
        EXPECT_NEAR(o[i][j].item<double>(), ui + 10 * uj, 1e-4) << "mode " << static_cast<int>(mode) << " at " << i << "," << j;
      }
  }
  for (int i = 2; i <= 5; ++i)
    for (int j = 2; j <= 5; ++j) {
      double ui = (i + 0.5) * 7.0 / 8.0 - 0.5, uj = (j + 0.5) * 7.0 / 8.0 - 0.5;
      EXPECT_NEAR(out[i][j].item<double>(), ui + 10 * uj, 1e-4) << i << "," << j;
    }
  // Monotone along both axes everywhere (the AA kernel renormalises at the border).
  EXPECT_TRUE((out.slice(0, 1) - out.slice(0, 0, 7)).gt(0).all().item<bool>());
  EXPECT_TRUE((out.slice(1, 1) - out.slice(1, 0, 7)).gt(0).all().item<bool>());
  // Text: a 1x77 ramp -> 1x154.
  at::Tensor ramp = at::arange(77, at::kFloat).reshape({77, 1});
  at::Tensor t = resample_positions(ramp, 0, 1, 77, 1, 154);
  for (int i = 4; i < 150; i += 7) EXPECT_NEAR(t[i][0].item<double>(), (i + 0.5) * 0.5 - 0.5, 1e-4) << i;
}

TEST_F(ClipModelTest, GradientsReachEveryParameterOfBothTowers) {
  ClipVitOptions o = tiny_options();
  o.learn_logit_scale = true;
  ClipVit clip(o, "cpu");
  clip.set_training(true);
  at::Tensor pixels = at::randn({3, 3, 32, 32});
  at::Tensor tokens = clip.tokenize({"a photo of a cat", "no acute findings.", "cardiomegaly"});
  at::Tensor img = clip.encode_image(pixels), txt = clip.encode_text(tokens);
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, 32}));
  ASSERT_EQ(txt.sizes(), (std::vector<int64_t>{3, 32}));
  img = img / img.norm(2, -1, true);
  txt = txt / txt.norm(2, -1, true);
  at::Tensor logits = clip.logit_scale().exp() * at::matmul(img, txt.t());
  at::Tensor target = at::arange(3, at::kLong);
  at::Tensor loss = (at::cross_entropy_loss(logits, target) + at::cross_entropy_loss(logits.t(), target)) / 2;
  loss.backward();
  auto params = clip.parameters();
  EXPECT_EQ(params.size(), clip.state().size());  // logit_scale is learned here
  for (const auto& [name, t] : clip.state()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0.0) << name;
  }
}

TEST_F(ClipModelTest, ContrastiveFineTuningOverfitsATinyBatch) {
  // 4 random images paired with 4 different captions: a few AdamW steps on the symmetric CLIP loss must
  // bring it well below its chance value ln 4 (both towers learn the pairing).
  ClipVitOptions o = tiny_options();
  o.logit_scale = std::log(20.0);
  ClipVit clip(o, "cpu");
  clip.set_training(true);
  torch::optim::AdamW opt(clip.parameters(), torch::optim::AdamWOptions(2e-3).weight_decay(0.0));
  at::Tensor pixels = at::randn({4, 3, 32, 32});
  at::Tensor tokens = clip.tokenize({"a photo of a cat", "cardiomegaly", "pleural effusion", "no finding"});
  at::Tensor target = at::arange(4, at::kLong);
  auto loss_fn = [&] {
    at::Tensor img = clip.encode_image(pixels), txt = clip.encode_text(tokens);
    img = img / img.norm(2, -1, true);
    txt = txt / txt.norm(2, -1, true);
    at::Tensor logits = clip.logit_scale().exp() * at::matmul(img, txt.t());
    return (at::cross_entropy_loss(logits, target) + at::cross_entropy_loss(logits.t(), target)) / 2;
  };
  double first = 0, last = 0;
  for (int step = 0; step < 25; ++step) {
    opt.zero_grad();
    at::Tensor loss = loss_fn();
    if (step == 0) first = loss.item<double>();
    loss.backward();
    opt.step();
  }
  {
    at::NoGradGuard ng;
    last = loss_fn().item<double>();
  }
  EXPECT_GT(first, 0.5);
  EXPECT_LT(last, 0.1) << "first " << first;
}

TEST_F(ClipModelTest, FixedLogitScaleIsNotTrainable) {
  ClipVitOptions o = tiny_options();
  o.logit_scale = 4.602;
  ClipVit clip(o, "cpu");
  EXPECT_NEAR(clip.logit_scale().item<double>(), 4.602, 1e-6);
  EXPECT_FALSE(clip.logit_scale().requires_grad());
  EXPECT_EQ(clip.parameters().size() + 1, clip.state().size());
  // Learned: the value is clamped into [0, ln 100].
  o.learn_logit_scale = true;
  ClipVit learned(o, "cpu");
  {
    at::NoGradGuard ng;
    learned.model()->logit_scale.fill_(7.0);
  }
  EXPECT_NEAR(learned.logit_scale().item<double>(), std::log(100.0), 1e-6);
  learned.clamp_logit_scale();
  EXPECT_NEAR(learned.model()->logit_scale.item<double>(), std::log(100.0), 1e-6);
}

TEST_F(ClipModelTest, CausalMaskAndPaddingDoNotChangeTextEmbeddings) {
  ClipVit clip(tiny_options(), "cpu");
  clip.set_training(false);
  at::Tensor a = at::tensor({49406L, 320L, 2368L, 49407L}).reshape({1, 4});
  at::Tensor padded0 = at::cat({a, at::zeros({1, 6}, at::kLong)}, 1);
  at::Tensor padded_eot = at::cat({a, at::full({1, 6}, 49407L)}, 1);
  at::NoGradGuard ng;
  at::Tensor e = clip.encode_text(a);
  EXPECT_LT(testing::max_abs_diff(e, clip.encode_text(padded0)), 1e-5);
  EXPECT_LT(testing::max_abs_diff(e, clip.encode_text(padded_eot)), 1e-5);
  // Changing a token after the EOT never matters; changing one before it does.
  at::Tensor b = a.clone();
  b[0][1] = 1125;
  EXPECT_GT(testing::max_abs_diff(e, clip.encode_text(b)), 1e-4);
}

TEST_F(ClipModelTest, TokenizeFollowsOptions) {
  ClipVitOptions o = tiny_options();
  ClipVit hf(o, "cpu");
  at::Tensor t = hf.tokenize({"a photo of a cat", "cat"});
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 7}));  // padding = longest
  EXPECT_EQ(t[1][3].item<int64_t>(), 49407);             // pad_token = eot
  o.padding = "max_length";
  o.pad_token = "zero";
  ClipVit oa(o, "cpu");
  t = oa.tokenize({"cat"});
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{1, 16}));
  EXPECT_EQ(t[0][3].item<int64_t>(), 0);
  // text_cleaning: hf (default) keeps "&amp;" as characters (SOT & amp ; EOT); openai unescapes it to "&" (261).
  EXPECT_EQ(hf.tokenize({"&amp;"}).size(1), 5);
  o.text_cleaning = "openai";
  ClipVit oa2(o, "cpu");
  at::Tensor u = oa2.tokenize({"&amp;"});
  EXPECT_EQ(u[0][1].item<int64_t>(), 261);
  EXPECT_EQ(u[0][2].item<int64_t>(), 49407);
}

TEST_F(ClipModelTest, BadInputsGiveClearErrors) {
  ClipVit clip(tiny_options(), "cpu");
  testing::expect_error_contains([&] { clip.encode_image(at::zeros({2, 3, 64, 64})); },
                                 {"[N,3,32,32]", "[2, 3, 64, 64]"});
  testing::expect_error_contains([&] { clip.encode_image(at::zeros({2, 1, 32, 32})); }, {"[N,3,32,32]"});
  testing::expect_error_contains([&] { clip.encode_text(at::zeros({1, 17}, at::kLong)); }, {"L <= 16", "[1, 17]"});
  testing::expect_error_contains([&] { clip.encode_text(at::full({1, 4}, 49408L)); }, {"[0, 49408)", "49408"});
  testing::expect_error_contains([&] { clip.encode_text(at::zeros({1, 4})); }, {"integer token ids"});
  ClipVitOptions o = tiny_options();
  o.image_size = 36;
  testing::expect_error_contains([&] { ClipVit c(o, "cpu"); }, {"image_size", "multiple", "8", "36"});
  o = tiny_options();
  o.vocab = "/nonexistent/vocab.txt.gz";
  EXPECT_THROW(ClipVit(o, "cpu"), DataError);
  o = tiny_options();
  o.preset = "vit_h14";
  EXPECT_THROW(ClipVit(o, "cpu"), ConfigError);
  o = tiny_options();
  o.logit_scale = 5.0;
  EXPECT_THROW(ClipVit(o, "cpu"), ConfigError);
}

TEST_F(ClipModelTest, ShippedVocabIsFoundByDefault) {
  EXPECT_EQ(ClipVit::resolve_vocab(""), std::string(DAUG_CLIP_VOCAB_FILE));
}

}  // namespace
}  // namespace daug::plugins::clip
