#pragma once
/// Which dataset items each optimizer step sees: one permutation per epoch (Fisher–Yates with an explicit draw from
/// std::mt19937_64, identical on every standard library), cut into batches of min(batch_size, n).
///
/// Distributed sampling: every rank builds the same sampler (same seed), so the batch of step s is the same list on
/// every rank; rank r of W trains on `split(batch.size(), W, r)`, a contiguous slice (sizes differ by at most one),
/// and the Trainer cuts that slice further into `accumulate` micro-batches with the same rule. Over an epoch the
/// ranks' slices are disjoint shards of one permutation that cover every item of the epoch's batches exactly once,
/// as PyTorch's DistributedSampler. Unlike DistributedSampler this never pads with repeated items to equalise the
/// shards: the Trainer weights each slice by |slice| / |batch| and sums the gradients, which is exactly the
/// gradient of the whole batch for uneven slices too. (The one case with an empty slice, a last batch of an epoch
/// with fewer items than ranks under drop_last = false, runs a padding micro-batch with weight 0.)
#include <cstdint>
#include <vector>

namespace daug::train {

/// How the epoch's shuffling generator is seeded from the run seed.
enum class SeedPolicy {
  mix,     ///< mt19937_64(mix_seed(seed, 0x5eed0000 + epoch))   (train_classifier, train_diffusion)
  linear,  ///< mt19937_64(seed · 1000003 + epoch)                (train_clip)
};

/// A contiguous run [offset, offset + size) of a list.
struct Slice {
  int64_t offset = 0;
  int64_t size = 0;
};

/// Part `i` of `parts` contiguous parts of n items, sizes n / parts or one more (the first n % parts parts): the
/// rank slices of a batch and the micro-batches of a slice. 0 <= i < parts.
Slice split(int64_t n, int64_t parts, int64_t i);

/// The items rank `rank` of `world` trains on in a step whose (global) batch is `batch`, and their offset in it.
/// Normally its slice split(batch.size(), world, rank). When that slice is empty (a last batch of an epoch with
/// fewer items than ranks, under drop_last = false) it is rank 0's first micro-batch of `accumulate`, marked
/// `padding`: the rank runs it so that it takes part in the step's collectives, and the Trainer weights it 0.
struct RankPart {
  std::vector<int64_t> items;
  int64_t offset = 0;
  bool padding = false;
};
RankPart rank_part(const std::vector<int64_t>& batch, int rank, int world, int64_t accumulate);

class BatchSampler {
 public:
  /// n ≥ 1 items, batch_size ≥ 1 (clamped to n). drop_last: floor(n/b) batches per epoch, else ⌈n/b⌉ (the last one
  /// shorter). Throws ConfigError on n < 1 or batch_size < 1.
  BatchSampler(int64_t n, int64_t batch_size, bool drop_last, uint64_t seed, SeedPolicy policy);
  int64_t size() const { return n_; }
  int64_t batch_size() const { return b_; }
  int64_t steps_per_epoch() const { return per_epoch_; }
  /// The permutation of [0, n) used in `epoch`.
  std::vector<int64_t> permutation(int64_t epoch) const;
  /// Item indices of optimizer step `step` (epoch = step / steps_per_epoch()).
  std::vector<int64_t> batch(int64_t step);

 private:
  int64_t n_, b_, per_epoch_;
  bool drop_last_;
  uint64_t seed_;
  SeedPolicy policy_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_;
};

}  // namespace daug::train
