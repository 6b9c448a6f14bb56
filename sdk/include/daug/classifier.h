#pragma once
/// Classifier: a noise-aware (timestep-conditioned) classifier, used to guide diffusion.
#include <daug/component.h>
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <string>
#include <vector>

namespace daug {

/// f_φ(x_t, t) → logits over K classes (the super-classes of the configured grouping).
/// Contract: `t` holds ORIGINAL timesteps (0..T-1) even when the sampler is respaced; logits are [N,K] float32;
/// differentiable w.r.t. x_t.
class DAUG_SDK_API Classifier : public Component, public Trainable {
 public:
  static constexpr const char* kInterface = "Classifier";
  ~Classifier() override;
  virtual at::Tensor logits(const at::Tensor& x_t, const at::Tensor& t) = 0;
  /// Names of the K outputs, in output order (index 0 is "No Finding" for the default grouping).
  virtual std::vector<std::string> class_names() const = 0;
};

}  // namespace daug
