#pragma once
/// OpenAI CLIP (Radford et al. 2021, openai/CLIP clip/model.py) as LibTorch modules whose parameter names are
/// OpenAI's state-dict keys ("visual.conv1.weight", "transformer.resblocks.0.attn.in_proj_weight", ...), so
/// named_parameters() round-trips with OpenAI checkpoints.
#include <daug/tensor.h>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace daug::plugins::clip {

/// Architecture hyper-parameters. image_size/context_length are the sizes the model is BUILT at.
struct ClipArch {
  int64_t embed_dim = 512;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  int64_t vision_width = 768;
  int64_t vision_layers = 12;
  int64_t vision_heads = 12;
  int64_t context_length = 77;
  int64_t vocab_size = 49408;
  int64_t text_width = 512;
  int64_t text_layers = 12;
  int64_t text_heads = 8;
  int64_t in_channels = 3;

  int64_t grid() const { return image_size / patch_size; }
};

/// "vit_b32" (OpenAI ViT-B/32 at its native 224 px / 77 tokens) or "tiny" (width 64, 2 layers, patch 8,
/// 32 px, 16 tokens, embed 32; for tests). Unknown names throw daug::ConfigError.
ClipArch clip_preset(const std::string& name);

/// How positional tables are resampled when a checkpoint's size differs from the model's.
enum class PosInterp { bicubic_aa, bicubic, bilinear };
PosInterp parse_pos_interp(const std::string& s);

/// Resamples a positional table [prefix + old_h*old_w, C] to [prefix + new_h*new_w, C] on the (h, w) grid,
/// keeping the first `prefix` rows (the class token) unchanged (open_clip resize_pos_embed / DAug
/// resample_pos_embed). Same size in and out returns the input unchanged.
at::Tensor resample_positions(const at::Tensor& pos, int64_t prefix, int64_t old_h, int64_t old_w, int64_t new_h,
                              int64_t new_w, PosInterp mode = PosInterp::bicubic_aa);

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask);  // x [N,L,D]; mask [L,L] additive or undefined
  int64_t width, heads;
  at::Tensor in_proj_weight, in_proj_bias;
  torch::nn::Linear out_proj{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(int64_t width);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct ResidualAttentionBlockImpl : torch::nn::Module {
  ResidualAttentionBlockImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask);
  Attention attn{nullptr};
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(ResidualAttentionBlock);

struct TransformerImpl : torch::nn::Module {
  TransformerImpl(int64_t width, int64_t layers, int64_t heads);
  at::Tensor forward(at::Tensor x, const at::Tensor& mask);
  torch::nn::ModuleList resblocks{nullptr};
  std::vector<ResidualAttentionBlock> blocks;
};
TORCH_MODULE(Transformer);

struct VisionTransformerImpl : torch::nn::Module {
  explicit VisionTransformerImpl(const ClipArch& a);
  at::Tensor forward(const at::Tensor& pixels);  // [N,C,S,S] -> [N,embed]
  torch::nn::Conv2d conv1{nullptr};
  at::Tensor class_embedding, positional_embedding, proj;
  torch::nn::LayerNorm ln_pre{nullptr}, ln_post{nullptr};
  Transformer transformer{nullptr};
};
TORCH_MODULE(VisionTransformer);

enum class TextPooling { argmax, first_eot };

struct ClipModelImpl : torch::nn::Module {
  explicit ClipModelImpl(const ClipArch& a);
  /// [N,C,S,S] float -> [N,embed] (not normalised).
  at::Tensor encode_image(const at::Tensor& pixels);
  /// [N,L] int64, L <= context_length -> [N,embed] (not normalised), pooled at the EOT token.
  at::Tensor encode_text(const at::Tensor& tokens, TextPooling pooling = TextPooling::argmax);
  /// CLIP's initialisation (model.py initialize_parameters; nn.MultiheadAttention defaults in the vision tower).
  void initialize(double logit_scale_init);

  ClipArch arch;
  VisionTransformer visual{nullptr};
  Transformer transformer{nullptr};
  torch::nn::Embedding token_embedding{nullptr};
  at::Tensor positional_embedding, text_projection, logit_scale;
  torch::nn::LayerNorm ln_final{nullptr};
};
TORCH_MODULE(ClipModel);

/// Number of elements over all parameters.
int64_t count_parameters(torch::nn::Module& m);

}  // namespace daug::plugins::clip
