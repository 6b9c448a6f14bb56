#pragma once
// TEST-ONLY: a tiny deterministic daug::Backbone with real learnable image and text towers, for the CLIP
// training/evaluation tests (no weights, no tokenizer files). Image: 4×4 average pool → Linear(48, D).
// Text: byte tokens → Embedding(259, D) mean over non-pad tokens → Linear(D, D). Include only from tests.
#include <daug/backbone.h>
#include <daug/checkpoint.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

namespace daug::testing {

class FakeBackbone final : public Backbone {
 public:
  explicit FakeBackbone(int64_t dim = 8, int64_t image_size = 16, int64_t context = 24, uint64_t seed = 1)
      : dim_(dim), size_(image_size), ctx_(context) {
    at::manual_seed(seed);
    img_ = torch::nn::Linear(48, dim);
    emb_ = torch::nn::Embedding(259, dim);
    txt_ = torch::nn::Linear(dim, dim);
    scale_ = at::full({}, std::log(1.0 / 0.07)).set_requires_grad(true);
  }
  std::string describe() const override { return "fake_backbone(dim=" + std::to_string(dim_) + ")"; }
  at::Tensor encode_image(const at::Tensor& pixels) override {
    DAUG_CHECK(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == size_ && pixels.size(3) == size_,
               "fake backbone expects [N,3,", size_, ",", size_, "], but got ", pixels.sizes());
    ++image_calls;
    DAUG_CHECK(fail_after_images < 0 || image_calls <= fail_after_images, "fake backbone: injected failure");
    auto p = at::adaptive_avg_pool2d(pixels, {4, 4}).flatten(1);
    return img_->forward(p);
  }
  at::Tensor encode_text(const at::Tensor& tokens) override {
    ++text_calls;
    auto mask = (tokens != 0).to(at::kFloat).unsqueeze(-1);
    auto e = (emb_->forward(tokens) * mask).sum(1) / mask.sum(1).clamp_min(1);
    return txt_->forward(e);
  }
  at::Tensor tokenize(const std::vector<std::string>& texts) override {
    auto out = at::zeros({static_cast<int64_t>(texts.size()), ctx_}, at::kLong);
    for (size_t i = 0; i < texts.size(); ++i) {
      out[i][0] = 257;  // start
      int64_t j = 1;
      for (unsigned char ch : texts[i]) {
        if (j >= ctx_ - 1) break;
        out[i][j++] = static_cast<int64_t>(ch) + 1;
      }
      out[i][j] = 258;  // end
    }
    return out;
  }
  int64_t image_size() const override { return size_; }
  int64_t context_length() const override { return ctx_; }
  int64_t embed_dim() const override { return dim_; }
  at::Tensor logit_scale() override { return scale_; }
  void load_weights(const std::string& path) override { load_state(load_safetensors(path).tensors); }
  std::vector<at::Tensor> parameters() override {
    return {img_->weight, img_->bias, emb_->weight, txt_->weight, txt_->bias};
  }
  NamedTensors state() override {
    return {{"visual.proj.weight", img_->weight}, {"visual.proj.bias", img_->bias},
            {"text.token_embedding.weight", emb_->weight}, {"text.proj.weight", txt_->weight},
            {"text.proj.bias", txt_->bias}, {"logit_scale", scale_}};
  }
  void load_state(const NamedTensors& s) override { copy_state_checked(state(), s, "fake backbone state"); }
  void set_training(bool on) override { training = on; }

  bool training = true;
  int image_calls = 0, text_calls = 0;
  int fail_after_images = -1;  ///< throw on the call after this many (simulates a crash)
  torch::nn::Linear img_{nullptr};
  torch::nn::Embedding emb_{nullptr};
  torch::nn::Linear txt_{nullptr};
  at::Tensor scale_;

 private:
  int64_t dim_, size_, ctx_;
};

}  // namespace daug::testing
