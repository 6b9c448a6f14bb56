#pragma once
/// Guidance: a classifier-guidance term for diffusion sampling.
#include <daug/component.h>
#include <daug/tensor.h>

namespace daug {

/// Inputs of one guidance evaluation. References only; valid for the duration of the call.
struct GuidanceInput {
  const at::Tensor& x_t;     ///< noisy sample [N,C,H,W] on the run device
  const at::Tensor& t;       ///< ORIGINAL (un-respaced) timesteps [N], int64, in 0..T-1
  const at::Tensor& target;  ///< target class index per sample [N], int64, into the classifier's outputs
  int direction = +1;        ///< +1 moves toward the target class, -1 away from it
};

/// Returns direction · scale · ∇ₓ log p(y | x_t, t) (guided-diffusion's cond_fn).
///
/// Contract: the result has x_t's shape, dtype and device; inputs are not modified; it works under an outer
/// torch::NoGradGuard (it enables grad internally) and does not accumulate into any parameter's .grad.
/// The Generator decides how to apply it (DDIM: ε' = ε − √(1−ᾱ_t)·g; DDPM: μ' = μ + Σ·g).
class DAUG_SDK_API Guidance : public Component {
 public:
  static constexpr const char* kInterface = "Guidance";
  ~Guidance() override;
  virtual at::Tensor gradient(const GuidanceInput& in) = 0;
};

}  // namespace daug
