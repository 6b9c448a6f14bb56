#pragma once
/// `clip_vit`: daug::Backbone implemented as OpenAI CLIP (ViT image tower + causal text transformer), with the
/// exact CLIP BPE tokenizer, positional-table resampling (224 -> 256 px, 77 -> 154 tokens as DAug does) and
/// loaders for OpenAI TorchScript, Hugging Face safetensors and daug checkpoints.
#include "clip_model.h"
#include "clip_tokenizer.h"
#include "clip_weights.h"

#include <daug/backbone.h>
#include <daug/build_context.h>
#include <daug/options.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace daug::plugins::clip {

/// Options of the `clip_vit` backbone. Example TOML:
///   [backbone]
///   plugin = "clip_vit"
///   preset = "vit_b32"
///   weights = "/models/clip-vit-base-patch32/model.safetensors"
///   image_size = 256
///   context_length = 154
///   logit_scale = 4.602
///   logit_scale_from_weights = false
struct ClipVitOptions {
  std::string preset = "vit_b32";
  int64_t image_size = 256;
  int64_t context_length = 154;
  std::string weights;
  std::string weights_format = "auto";
  std::string vocab;
  std::string text_cleaning = "hf";
  std::string pad_token = "eot";
  std::string padding = "longest";
  bool truncate = true;
  std::string text_pooling = "argmax";
  std::string pos_interpolation = "bicubic_aa";
  double logit_scale = 2.659260036932778;  // ln(1/0.07)
  bool learn_logit_scale = false;
  bool logit_scale_from_weights = true;

  void visit(daug::OptionVisitor& v) {
    v("preset", preset, "architecture: vit_b32 (OpenAI ViT-B/32) or tiny (width 64, 2 layers, patch 8; tests)",
      Check::choice({"vit_b32", "tiny"}));
    v("image_size", image_size,
      "input side in pixels (multiple of the patch size); checkpoint positions are resampled to it "
      "(DAug: 256, i.e. 7x7 -> 8x8)",
      Check::at_least(1));
    v("context_length", context_length,
      "text context in tokens; checkpoint positions are resampled to it (DAug: 154 = 77 x 2)", Check::at_least(2));
    v("weights", weights, "pretrained weights file; empty = random init with CLIP's init scheme");
    v("weights_format", weights_format,
      "auto (detect), openai (TorchScript ViT-B-32.pt or a torch.save'd state dict or checkpoint, e.g. "
      "pytorch_model.bin), hf (CLIPModel safetensors), daug (own safetensors or training checkpoint)",
      Check::choice({"auto", "openai", "hf", "daug"}));
    v("vocab", vocab, "bpe_simple_vocab_16e6.txt.gz; empty = the copy shipped with daug");
    v("text_cleaning", text_cleaning,
      "hf (CLIPTokenizerFast, as DAug: NFC, whitespace, lowercase) or openai (simple_tokenizer.py: ftfy's fix_text "
      "without its mojibake repair, then html-unescape twice)",
      Check::choice({"hf", "openai"}));
    v("pad_token", pad_token, "padding id: eot (49407, Hugging Face / DAug) or zero (0, OpenAI clip.tokenize)",
      Check::choice({"eot", "zero"}));
    v("padding", padding, "longest (pad to the longest text in the batch, as DAug) or max_length (context_length)",
      Check::choice({"longest", "max_length"}));
    v("truncate", truncate,
      "truncate texts longer than context_length to SOT + first L-2 tokens + EOT (with a warning); false = error");
    v("text_pooling", text_pooling,
      "text feature position: argmax (largest id, OpenAI) or first_eot (first 49407, Hugging Face)",
      Check::choice({"argmax", "first_eot"}));
    v("pos_interpolation", pos_interpolation,
      "positional-table resampling: bicubic_aa (open_clip / DAug), bicubic (no antialias), bilinear",
      Check::choice({"bicubic_aa", "bicubic", "bilinear"}));
    v("logit_scale", logit_scale, "initial log logit scale (CLIP: ln(1/0.07) = 2.6593; DAug: 4.602)",
      Check::range(0.0, 4.605170185988092));
    v("learn_logit_scale", learn_logit_scale,
      "train the logit scale (clamped to [0, ln 100]); false = fixed, as in DAug");
    v("logit_scale_from_weights", logit_scale_from_weights,
      "take logit_scale from the weights file (true) or keep the configured value (false, as DAug)");
  }
};

class ClipVit final : public daug::Backbone {
 public:
  using Options = ClipVitOptions;

  /// Builds the model on `device` ("cpu", "cuda", "cuda:1"); loads opts.weights if set.
  ClipVit(Options opts, const std::string& device);
  static std::shared_ptr<daug::Backbone> create(Options opts, daug::BuildContext& ctx);

  at::Tensor encode_image(const at::Tensor& pixels) override;
  at::Tensor encode_text(const at::Tensor& tokens) override;
  /// Returns CPU int64 ids [N, L].
  at::Tensor tokenize(const std::vector<std::string>& texts) override;
  int64_t image_size() const override { return model_->arch.image_size; }
  int64_t context_length() const override { return model_->arch.context_length; }
  int64_t embed_dim() const override { return model_->arch.embed_dim; }
  /// Fixed: the (non-trainable) parameter. Learned: clamp(param, 0, ln 100), differentiable inside the range.
  at::Tensor logit_scale() override;
  /// Clamps the learned parameter into [0, ln 100] in place (call after the optimizer step, as open_clip does).
  void clamp_logit_scale();
  void load_weights(const std::string& path) override;

  std::vector<at::Tensor> parameters() override;
  NamedTensors state() override;
  void load_state(const NamedTensors& state) override;
  void set_training(bool on) override;
  std::string describe() const override;

  ClipModel& model() { return model_; }
  const ClipTokenizer& tokenizer();
  const Options& options() const { return opts_; }
  /// The vocabulary path the options resolve to (the shipped copy when opts.vocab is empty).
  static std::string resolve_vocab(const std::string& configured);

 private:
  Options opts_;
  c10::Device device_;
  ClipModel model_{nullptr};
  std::mutex tok_mutex_;
  std::unique_ptr<ClipTokenizer> tokenizer_;
  std::string vocab_path_;
};

}  // namespace daug::plugins::clip
