#pragma once
/// Dynamic loss scaling for float16 training, with torch.cuda.amp.GradScaler's semantics and defaults:
///   backward on loss · scale; unscale: g ← g / scale for every gradient, found_inf = any non-finite value;
///   step skipped when found_inf; update: found_inf → scale · backoff (0.5) and the good-step count reset,
///   otherwise count + 1 and, when it reaches growth_interval (2000), scale · growth (2) and count 0.
/// The state (scale, good-step count, skipped steps) is checkpointed under `scaler.*` so a resumed run continues
/// exactly. bf16 needs no scaler (it has float32's exponent range).
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <cstdint>
#include <string>
#include <vector>

namespace daug::train {

struct GradScalerOptions {
  double init_scale = 65536.0;  ///< 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions o = {});
  double scale() const { return scale_; }
  int64_t good_steps() const { return good_; }
  int64_t skipped() const { return skipped_; }
  /// loss · scale (backward on this).
  at::Tensor scale_loss(const at::Tensor& loss) const;
  /// Divides every defined gradient of `params` by the scale in place; returns whether any is inf/NaN
  /// (one host read for all tensors).
  bool unscale(const std::vector<at::Tensor>& params) const;
  /// Records the outcome of a step: found_inf → backoff (and counts a skipped step), else growth bookkeeping.
  void update(bool found_inf);
  /// `scaler.scale` (float64), `scaler.good_steps`, `scaler.skipped` (int64).
  NamedTensors state() const;
  /// Restores state(); a missing or malformed key is a DataError naming `source` and the key.
  void load_state(const NamedTensors& state, const std::string& source);

 private:
  GradScalerOptions o_;
  double scale_;
  int64_t good_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace daug::train
