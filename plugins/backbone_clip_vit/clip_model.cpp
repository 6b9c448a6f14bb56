// OpenAI CLIP modules; see clip_model.h.
#include "clip_model.h"

#include <daug/error.h>

#include <ATen/ATen.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>

#include <cmath>
#include <limits>

namespace daug::plugins::clip {

namespace F = torch::nn::functional;

ClipArch clip_preset(const std::string& name) {
  ClipArch a;
  if (name == "vit_b32") return a;
  if (name == "tiny") {
    a.embed_dim = 32;
    a.image_size = 32;
    a.patch_size = 8;
    a.vision_width = 64;
    a.vision_layers = 2;
    a.vision_heads = 2;
    a.context_length = 16;
    a.text_width = 64;
    a.text_layers = 2;
    a.text_heads = 2;
    return a;
  }
  throw ConfigError("clip_vit preset must be one of: vit_b32, tiny, but got '" + name + "'");
}

PosInterp parse_pos_interp(const std::string& s) {
  if (s == "bicubic_aa") return PosInterp::bicubic_aa;
  if (s == "bicubic") return PosInterp::bicubic;
  if (s == "bilinear") return PosInterp::bilinear;
  throw ConfigError("position interpolation must be one of: bicubic_aa, bicubic, bilinear, but got '" + s + "'");
}

at::Tensor resample_positions(const at::Tensor& pos, int64_t prefix, int64_t old_h, int64_t old_w, int64_t new_h,
                              int64_t new_w, PosInterp mode) {
  DAUG_CHECK(pos.dim() == 2 && pos.size(0) == prefix + old_h * old_w, "positional table must be [", prefix, " + ",
             old_h, "*", old_w, ", C], but got ", pos.sizes());
  if (old_h == new_h && old_w == new_w) return pos;
  const auto dtype = pos.scalar_type();
  at::Tensor head = pos.slice(0, 0, prefix);
  at::Tensor grid = pos.slice(0, prefix).to(at::kFloat).reshape({1, old_h, old_w, -1}).permute({0, 3, 1, 2});
  auto opts = F::InterpolateFuncOptions().size(std::vector<int64_t>{new_h, new_w});
  switch (mode) {
    case PosInterp::bicubic_aa: opts.mode(torch::kBicubic).align_corners(false).antialias(true); break;
    case PosInterp::bicubic: opts.mode(torch::kBicubic).align_corners(false); break;
    case PosInterp::bilinear: opts.mode(torch::kBilinear).align_corners(false); break;
  }
  at::Tensor out = F::interpolate(grid, opts).permute({0, 2, 3, 1}).reshape({new_h * new_w, -1}).to(dtype);
  return at::cat({head, out}, 0);
}

AttentionImpl::AttentionImpl(int64_t w, int64_t h) : width(w), heads(h) {
  DAUG_CHECK_AS(ConfigError, h > 0 && w % h == 0, "attention width ", w, " must be divisible by heads ", h);
  in_proj_weight = register_parameter("in_proj_weight", at::empty({3 * w, w}));
  in_proj_bias = register_parameter("in_proj_bias", at::zeros({3 * w}));
  out_proj = register_module("out_proj", torch::nn::Linear(w, w));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  const int64_t N = x.size(0), L = x.size(1), hd = width / heads;
  at::Tensor qkv = at::linear(x, in_proj_weight, in_proj_bias);  // [N,L,3D], q;k;v stacked
  auto parts = qkv.chunk(3, -1);
  auto split = [&](const at::Tensor& t) { return t.reshape({N, L, heads, hd}).transpose(1, 2); };  // [N,H,L,hd]
  at::Tensor q = split(parts[0]) * (1.0 / std::sqrt(static_cast<double>(hd)));
  at::Tensor k = split(parts[1]), v = split(parts[2]);
  at::Tensor att = at::matmul(q, k.transpose(-2, -1));  // [N,H,L,L]
  if (mask.defined()) att = att + mask;
  att = at::softmax(att.to(at::kFloat), -1).to(v.scalar_type());
  at::Tensor y = at::matmul(att, v).transpose(1, 2).reshape({N, L, width});
  return out_proj->forward(y);
}

MlpImpl::MlpImpl(int64_t w) {
  c_fc = register_module("c_fc", torch::nn::Linear(w, 4 * w));
  c_proj = register_module("c_proj", torch::nn::Linear(4 * w, w));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = c_fc->forward(x);
  h = h * at::sigmoid(1.702 * h);  // QuickGELU
  return c_proj->forward(h);
}

ResidualAttentionBlockImpl::ResidualAttentionBlockImpl(int64_t w, int64_t h) {
  attn = register_module("attn", Attention(w, h));
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w}).eps(1e-5)));
  mlp = register_module("mlp", Mlp(w));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w}).eps(1e-5)));
}

at::Tensor ResidualAttentionBlockImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  at::Tensor y = x + attn->forward(ln_1->forward(x), mask);
  return y + mlp->forward(ln_2->forward(y));
}

TransformerImpl::TransformerImpl(int64_t w, int64_t layers, int64_t h) {
  resblocks = register_module("resblocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) {
    blocks.emplace_back(w, h);
    resblocks->push_back(blocks.back());
  }
}

at::Tensor TransformerImpl::forward(at::Tensor x, const at::Tensor& mask) {
  for (auto& b : blocks) x = b->forward(x, mask);
  return x;
}

VisionTransformerImpl::VisionTransformerImpl(const ClipArch& a) {
  DAUG_CHECK_AS(ConfigError, a.patch_size > 0 && a.image_size % a.patch_size == 0, "image_size ", a.image_size,
                " must be a positive multiple of the patch size ", a.patch_size);
  const int64_t w = a.vision_width, g = a.grid();
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(a.in_channels, w, a.patch_size)
                                                         .stride(a.patch_size)
                                                         .bias(false)));
  class_embedding = register_parameter("class_embedding", at::zeros({w}));
  positional_embedding = register_parameter("positional_embedding", at::zeros({g * g + 1, w}));
  ln_pre = register_module("ln_pre", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w}).eps(1e-5)));
  transformer = register_module("transformer", Transformer(w, a.vision_layers, a.vision_heads));
  ln_post = register_module("ln_post", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w}).eps(1e-5)));
  proj = register_parameter("proj", at::zeros({w, a.embed_dim}));
}

at::Tensor VisionTransformerImpl::forward(const at::Tensor& pixels) {
  at::Tensor x = conv1->forward(pixels);         // [N,W,g,g]
  x = x.flatten(2).transpose(1, 2);              // [N,g*g,W]
  at::Tensor cls = class_embedding.to(x.scalar_type()).expand({x.size(0), 1, x.size(2)});
  x = at::cat({cls, x}, 1) + positional_embedding.to(x.scalar_type());
  x = ln_pre->forward(x);
  x = transformer->forward(x, at::Tensor());
  x = ln_post->forward(x.select(1, 0));
  return at::matmul(x, proj);
}

ClipModelImpl::ClipModelImpl(const ClipArch& a) : arch(a) {
  DAUG_CHECK_AS(ConfigError, a.context_length >= 2, "context_length must be >= 2, but got ", a.context_length);
  visual = register_module("visual", VisionTransformer(a));
  transformer = register_module("transformer", Transformer(a.text_width, a.text_layers, a.text_heads));
  token_embedding = register_module("token_embedding", torch::nn::Embedding(a.vocab_size, a.text_width));
  positional_embedding = register_parameter("positional_embedding", at::zeros({a.context_length, a.text_width}));
  ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({a.text_width}).eps(1e-5)));
  text_projection = register_parameter("text_projection", at::zeros({a.text_width, a.embed_dim}));
  logit_scale = register_parameter("logit_scale", at::zeros({}));
}

void ClipModelImpl::initialize(double logit_scale_init) {
  at::NoGradGuard ng;
  namespace I = torch::nn::init;
  // Vision tower: class/pos/proj ~ scale·N(0,1), scale = width^-0.5; attention as nn.MultiheadAttention's
  // _reset_parameters (xavier_uniform in_proj, zero biases); Linear/Conv2d keep their PyTorch default init.
  const double vs = 1.0 / std::sqrt(static_cast<double>(arch.vision_width));
  visual->class_embedding.normal_(0.0, vs);
  visual->positional_embedding.normal_(0.0, vs);
  visual->proj.normal_(0.0, vs);
  for (auto& b : visual->transformer->blocks) {
    I::xavier_uniform_(b->attn->in_proj_weight);
    b->attn->in_proj_bias.zero_();
    b->attn->out_proj->bias.zero_();
  }
  // Text tower: model.py initialize_parameters.
  token_embedding->weight.normal_(0.0, 0.02);
  positional_embedding.normal_(0.0, 0.01);
  const double w = static_cast<double>(arch.text_width);
  const double proj_std = std::pow(w, -0.5) * std::pow(2.0 * static_cast<double>(arch.text_layers), -0.5);
  const double attn_std = std::pow(w, -0.5);
  const double fc_std = std::pow(2.0 * w, -0.5);
  for (auto& b : transformer->blocks) {
    b->attn->in_proj_weight.normal_(0.0, attn_std);
    b->attn->in_proj_bias.zero_();
    b->attn->out_proj->weight.normal_(0.0, proj_std);
    b->attn->out_proj->bias.zero_();
    b->mlp->c_fc->weight.normal_(0.0, fc_std);
    b->mlp->c_proj->weight.normal_(0.0, proj_std);
  }
  text_projection.normal_(0.0, attn_std);
  logit_scale.fill_(logit_scale_init);
}

at::Tensor ClipModelImpl::encode_image(const at::Tensor& pixels) { return visual->forward(pixels); }

at::Tensor ClipModelImpl::encode_text(const at::Tensor& tokens, TextPooling pooling) {
  const int64_t N = tokens.size(0), L = tokens.size(1);
  at::Tensor x = token_embedding->forward(tokens) + positional_embedding.slice(0, 0, L);
  at::Tensor mask = at::full({L, L}, -std::numeric_limits<float>::infinity(), x.options()).triu(1);
  x = transformer->forward(x, mask);
  x = ln_final->forward(x);
  at::Tensor idx;
  if (pooling == TextPooling::argmax) {
    idx = tokens.argmax(-1);
  } else {
    // First position holding the end-of-text id (49407); rows without one fall back to argmax.
    at::Tensor is_eot = tokens.eq(arch.vocab_size - 1).to(at::kLong);
    at::Tensor first = is_eot.argmax(-1);
    idx = at::where(is_eot.sum(-1) > 0, first, tokens.argmax(-1));
  }
  at::Tensor pooled = x.gather(1, idx.view({N, 1, 1}).expand({N, 1, x.size(2)})).squeeze(1);
  return at::matmul(pooled, text_projection);
}

int64_t count_parameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace daug::plugins::clip
