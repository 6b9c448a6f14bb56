#pragma once
/// Exponential moving average of parameters, guided-diffusion's update_ema: ema ← rate·ema + (1−rate)·p.
/// Checkpoint keys `ema.<i>` (parameter order).
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <string>
#include <vector>

namespace daug::train {

class Ema {
 public:
  /// The shadow starts as a copy of `params`. rate in [0, 1).
  Ema(std::vector<at::Tensor> params, double rate);
  void update();
  double rate() const { return rate_; }
  const std::vector<at::Tensor>& shadow() const { return shadow_; }
  /// `model_state` (a Trainable::state()) with every tensor that is one of the parameters replaced by its EMA.
  NamedTensors substitute(const NamedTensors& model_state) const;
  NamedTensors state() const;  ///< "ema.<i>"
  /// Restores state(); a missing key or a wrong shape throws DataError naming `source` and the key (nothing is
  /// modified then).
  void load_state(const NamedTensors& state, const std::string& source);

 private:
  std::vector<at::Tensor> params_, shadow_;
  double rate_;
};

}  // namespace daug::train
