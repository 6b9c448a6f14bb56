#pragma once
/// Range checks of index tensors (labels, targets, timesteps, token ids) that do not stall a device step loop.
#include <daug/api.h>
#include <daug/tensor.h>

#include <cstdint>

namespace daug {

struct IntRange {
  int64_t min = 0, max = -1;  ///< max < min: the tensor was empty
  bool empty() const { return max < min; }
  /// True if empty or every value lies in [lo, hi].
  bool within(int64_t lo, int64_t hi) const { return empty() || (min >= lo && max <= hi); }
};

/// Min and max of a tensor's values as int64 (as .to(at::kLong) converts them). A CPU tensor is read in place (no .item(): nothing a step loop would wait
/// for); a tensor on another device is copied to the host once, which waits for the device: check host copies in
/// per-step paths, and device tensors at most once per call.
DAUG_SDK_API IntRange int_range(const at::Tensor& t);

}  // namespace daug
