#pragma once
/// ADM UNet and EncoderUNet (openai/guided-diffusion unet.py), written on plain ATen ops so that parameter
/// names and shapes equal guided-diffusion's state_dict (input_blocks.0.0.weight, time_embed.0.weight,
/// label_emb.weight, middle_block.1.qkv.weight, out.2.weight, ...): real checkpoints load key for key.
/// REFERENCE.md §1.2, §2.2, §3.5.
///
/// Numerics as guided-diffusion: timestep_embedding cos-then-sin; GroupNorm(32) computed in float32;
/// attention scale ch^(-1/4) on q and k, softmax in float32; zero-initialised output convolutions.
/// Light header: no torch/torch.h. Thread-safety: a model may be used by one thread at a time.
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace daug::adm {

/// Hyper-parameters shared by UNetModel and EncoderUNetModel (guided-diffusion constructor arguments).
struct UNetConfig {
  int64_t image_size = 64;
  int64_t in_channels = 1;
  int64_t model_channels = 128;
  int64_t out_channels = 2;                     ///< UNet: C or 2C (learn_sigma); encoder: number of classes
  int64_t num_res_blocks = 2;
  std::vector<int64_t> attention_resolutions;   ///< as the script flags: resolutions (e.g. 16), ds = image_size/res
  double dropout = 0.0;
  std::vector<double> channel_mult = {1, 1, 2, 2, 4, 4};
  bool conv_resample = true;
  int64_t num_classes = 0;                      ///< 0: unconditional (no label_emb); UNet only
  int64_t num_heads = 1;
  int64_t num_head_channels = -1;               ///< > 0 overrides num_heads with channels / num_head_channels
  int64_t num_heads_upsample = -1;
  bool use_scale_shift_norm = false;
  bool resblock_updown = false;
  bool use_new_attention_order = false;
  std::string pool = "attention";               ///< encoder only: "attention" | "adaptive"

  /// Throws daug::ConfigError (prefixed by `where`) when the configuration cannot build a model: sizes that do
  /// not divide, channel counts not divisible by 32 (GroupNorm32), heads that do not divide channels, ...
  void validate(const std::string& where, bool encoder) const;
  /// Downsample rates ds at which attention is used.
  std::vector<int64_t> attention_ds() const;
};

/// UNet presets: "tiny" (32², 32 ch, mult 1,2, 1 RB, attn at 16, 2 classes, learn_sigma, 1 channel: CPU tests),
/// "wolleb256" (Wolleb/DAug settings at 256²: 128 ch, mult 1,1,2,2,4,4, 2 RB, 1 head, attn 16, no scale-shift,
/// learn_sigma, 2 classes, 1 channel), "daug512" (the same at 512², as DAug's train_ddpm.sh).
UNetConfig unet_preset(const std::string& name);
/// Encoder presets: "tiny" (32², width 32, mult 1,2, depth 1, attn 16, attention pool, head_ch 32),
/// "wolleb256" / "daug512" (width 32, mult 1,1,2,2,4,4, depth 4, attn 32,16,8, resblock_updown, scale-shift,
/// head_ch 64, attention pool; out_channels is set by the caller).
UNetConfig encoder_preset(const std::string& name);

/// Sinusoidal timestep embedding [N, dim]: [cos(t·f), sin(t·f)], f_i = exp(−ln(max_period)·i/half) (nn.py).
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period = 10000.0);

/// QKV attention on qkv [N, 3·H·ch, T] → [N, H·ch, T]: softmax(qᵀk/√ch)·v per head, scale ch^(-1/4) on q and
/// k, softmax in float32. new_order = false: QKVAttentionLegacy (rows [h0: q,k,v | h1: q,k,v | ...]);
/// true: QKVAttention (rows [q_all | k_all | v_all], used by AttentionPool2d and use_new_attention_order).
at::Tensor qkv_attention(const at::Tensor& qkv, int64_t heads, bool new_order);

/// guided-diffusion UNetModel: forward(x [N,C,H,W], t [N] original timesteps, y [N] labels) → [N,out,H,W].
class UNetModel {
 public:
  /// Builds the model with PyTorch's default initialisation (and zero-init output convs) on `device`, drawing
  /// from the global ATen generator (seed it with at::manual_seed for reproducible weights).
  UNetModel(const UNetConfig& cfg, const at::Device& device);
  ~UNetModel();
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y = at::Tensor()) const;
  const UNetConfig& config() const;
  NamedTensors named_parameters() const;
  std::vector<at::Tensor> parameters() const;
  int64_t num_parameters() const;
  void set_training(bool on);
  bool training() const;
  /// dtype of the torso (guided-diffusion use_fp16: input/middle/output blocks; the time embedding, GroupNorm,
  /// attention softmax and the output head stay float32). Parameters stay float32 and are cast per call.
  void set_compute_dtype(at::ScalarType dtype);
  at::ScalarType compute_dtype() const;
  /// Gradient checkpointing of the input, middle and output blocks: while a graph is recorded, each block keeps
  /// only its input and is recomputed in backward (RNG state replayed for dropout). Same gradients, less memory,
  /// one more forward of the torso per backward. No effect under no-grad (sampling).
  void set_gradient_checkpointing(bool on);
  bool gradient_checkpointing() const;
  /// Memory format of the torso's activations: Contiguous (NCHW, default) or ChannelsLast (NHWC; other conv
  /// kernels, so results differ in the last bits). The output is always contiguous. On Debian's 1.13 CPU build
  /// (AVX2) ChannelsLast was slower (tests/bench/README.md); on CUDA/AVX512 it can be faster.
  void set_memory_format(at::MemoryFormat format);
  at::MemoryFormat memory_format() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// guided-diffusion EncoderUNetModel (the noisy classifier): forward(x, t) → [N, out_channels] logits.
class EncoderUNetModel {
 public:
  EncoderUNetModel(const UNetConfig& cfg, const at::Device& device);
  ~EncoderUNetModel();
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t) const;
  const UNetConfig& config() const;
  NamedTensors named_parameters() const;
  std::vector<at::Tensor> parameters() const;
  int64_t num_parameters() const;
  void set_compute_dtype(at::ScalarType dtype);  ///< as UNetModel::set_compute_dtype
  void set_gradient_checkpointing(bool on);       ///< as UNetModel::set_gradient_checkpointing
  bool gradient_checkpointing() const;
  void set_memory_format(at::MemoryFormat format);  ///< as UNetModel::set_memory_format
  at::MemoryFormat memory_format() const;
  void set_training(bool on);
  bool training() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace daug::adm
