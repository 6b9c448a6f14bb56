#pragma once
/// Which dataset items each optimizer step sees: one permutation per epoch (Fisher–Yates with an explicit draw from
/// std::mt19937_64, identical on every standard library), cut into batches of min(batch_size, n).
#include <cstdint>
#include <vector>

namespace daug::train {

/// How the epoch's shuffling generator is seeded from the run seed.
enum class SeedPolicy {
  mix,     ///< mt19937_64(mix_seed(seed, 0x5eed0000 + epoch))   (train_classifier, train_diffusion)
  linear,  ///< mt19937_64(seed · 1000003 + epoch)                (train_clip)
};

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
