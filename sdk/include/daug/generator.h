#pragma once
/// Generator: a diffusion model that can be trained and can translate an image (encode to a noise level,
/// then decode with optional guidance) — the source of DAug's heatmaps.
#include <daug/component.h>
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <cstdint>
#include <vector>

namespace daug {

class Guidance;

/// How the clean image is taken to noise level L before guided decoding.
enum class EncodeMode {
  ddim_inversion,  ///< deterministic DDIM reverse steps (the released DAug code)
  q_sample,        ///< one forward-noising draw, then DDPM ancestral decoding (Wolleb's DDPM path)
};

/// One translation request. Tensors live on the run device.
struct TranslateRequest {
  at::Tensor x0;                  ///< [N,C,H,W] in the model's data range
  at::Tensor label;               ///< [N] int64 class label of a class-conditional model; undefined if unconditional
  Guidance* guidance = nullptr;   ///< nullptr: unguided
  at::Tensor target;              ///< [N] int64 guidance target (see Guidance)
  int direction = +1;             ///< guidance direction
  int64_t noise_level = 500;      ///< L in ORIGINAL timesteps, 1 <= L < T
  EncodeMode encode = EncodeMode::ddim_inversion;
};

class DAUG_SDK_API Generator : public Component, public Trainable {
 public:
  static constexpr const char* kInterface = "Generator";
  ~Generator() override;
  /// T of the training schedule.
  virtual int64_t num_timesteps() const = 0;
  /// Expected input shape {C, H, W}.
  virtual std::vector<int64_t> image_shape() const = 0;
  /// x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·noise, t in ORIGINAL timesteps [N].
  virtual at::Tensor q_sample(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) = 0;
  /// Training loss (scalar, differentiable) for a batch of clean images; draws t and noise itself.
  virtual at::Tensor training_loss(const at::Tensor& x0, const at::Tensor& label) = 0;
  /// Encode to L and decode back to 0; returns x̂0 with x0's shape.
  virtual at::Tensor translate(const TranslateRequest& request) = 0;
};

}  // namespace daug
