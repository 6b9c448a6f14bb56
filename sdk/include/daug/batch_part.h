#pragma once
/// BatchPart: where the items a training step function is given sit in the optimizer step's whole batch.
///
/// An optimizer step's batch (the config's `batch_size`) may be split over ranks of a distributed launch and, within
/// a rank, over `accumulate` micro-batches. The trainer sets the part (offset and the whole batch's size) while the
/// step function runs. A step function that draws random numbers per item (diffusion timesteps and noise) draws
/// them through the functions below: they draw for the whole batch from the same generator state (every rank and
/// micro-batch starts the step from the same seed) and keep this part's rows, so item i gets the same numbers
/// however the batch is split, and N ranks × b items train the same model as 1 rank × N·b items.
/// Outside a part (or when the part is the whole batch) they are exactly at::randn_like / at::randint.
#include <daug/api.h>
#include <daug/tensor.h>

#include <cstdint>

namespace daug {

struct BatchPart {
  int64_t offset = 0;  ///< first item of this part in the whole batch
  int64_t total = 0;   ///< items in the whole batch; 0 = no part set (the step function sees the whole batch)
};

/// The part set by the innermost BatchPartScope of this thread ({0, 0} if none).
DAUG_SDK_API BatchPart current_batch_part();

/// Sets this thread's batch part for its lifetime (the trainer does, around each call of the step function).
class DAUG_SDK_API BatchPartScope {
 public:
  explicit BatchPartScope(BatchPart part);
  ~BatchPartScope();
  BatchPartScope(const BatchPartScope&) = delete;
  BatchPartScope& operator=(const BatchPartScope&) = delete;

 private:
  BatchPart previous_;
};

/// Standard normal noise shaped like `like` (whose first dimension is this part's item count), the rows of this part
/// in a draw for the whole batch.
DAUG_SDK_API at::Tensor randn_like_part(const at::Tensor& like);
/// `n` integers uniform in [low, high) with `options` (dtype, device), this part's rows of a draw for the whole
/// batch. Throws daug::Error if n does not fit in the whole batch at the part's offset.
DAUG_SDK_API at::Tensor randint_part(int64_t low, int64_t high, int64_t n, const at::TensorOptions& options);

}  // namespace daug
