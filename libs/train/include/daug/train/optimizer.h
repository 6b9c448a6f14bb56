#pragma once
/// AdamW with per-parameter weight-decay flags and checkpointable state (keys `optim.*`).
///
/// Update rule = torch.optim.AdamW (amsgrad=False), per parameter i with gradient g at step t:
///   p ← p·(1 − lr·wd)            (only if decay[i] and wd ≠ 0: decoupled decay)
///   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
///   p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps)
/// Parameters without a gradient are skipped (as in PyTorch); the step counter is shared by all parameters.
/// The tensor operations and their order are fixed: weights trained with this class are reproducible bit for bit.
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <cstdint>
#include <string>
#include <vector>

namespace daug::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  ///< decoupled decay, applied to the parameters whose decay flag is set
};

class AdamW {
 public:
  /// `decay` holds one flag per parameter (torch's two param groups "decay"/"no decay"); empty = all decayed.
  AdamW(std::vector<at::Tensor> params, AdamWOptions options, std::vector<bool> decay = {});
  /// Drops every parameter's gradient (set_to_none).
  void zero_grad();
  /// One update with learning rate `lr`.
  void step(double lr);
  int64_t steps() const { return step_; }
  size_t size() const { return params_.size(); }
  bool decays(size_t i) const { return decay_.at(i); }
  const std::vector<at::Tensor>& params() const { return params_; }
  /// "optim.step" (int64 scalar), "optim.exp_avg.<i>", "optim.exp_avg_sq.<i>" for parameter i (CPU tensors).
  NamedTensors state() const;
  /// Restores state() (other keys are ignored). A missing key, a wrong shape or more slots than parameters throws
  /// DataError naming `source` and the key; nothing is modified in that case.
  void load_state(const NamedTensors& state, const std::string& source);

 private:
  std::vector<at::Tensor> params_;
  std::vector<bool> decay_;
  AdamWOptions opts_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  int64_t step_ = 0;
};

/// Decay flags for `params` by name: the parameter whose checkpoint key in `state` (matched by tensor identity)
/// contains any of `no_decay` as a substring is not decayed (HF/released: no_decay = ['bias', ...] by substring, so
/// LayerNorm weights ARE decayed under HF names). Throws Error if a parameter is not among the state tensors.
std::vector<bool> decay_flags(const std::vector<at::Tensor>& params, const NamedTensors& state,
                              const std::vector<std::string>& no_decay);

}  // namespace daug::train
