// Epoch permutations and batches. See daug/train/sampler.h.
#include <daug/train/sampler.h>

#include <daug/error.h>
#include <daug/seed.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace daug::train {

BatchSampler::BatchSampler(int64_t n, int64_t batch_size, bool drop_last, uint64_t seed, SeedPolicy policy)
    : n_(n), b_(0), per_epoch_(0), drop_last_(drop_last), seed_(seed), policy_(policy) {
  DAUG_CHECK_AS(ConfigError, batch_size >= 1, "batch_size must be >= 1, but got ", batch_size);
  DAUG_CHECK_AS(ConfigError, n >= 1, "the training split has no items");
  b_ = std::min(batch_size, n);
  per_epoch_ = drop_last_ ? n_ / b_ : (n_ + b_ - 1) / b_;
}

std::vector<int64_t> BatchSampler::permutation(int64_t epoch) const {
  std::vector<int64_t> perm(static_cast<size_t>(n_));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  const uint64_t s = policy_ == SeedPolicy::mix ? mix_seed(seed_, 0x5eed0000ULL + static_cast<uint64_t>(epoch))
                                                : seed_ * 1000003ULL + static_cast<uint64_t>(epoch);
  std::mt19937_64 rng(s);
  for (int64_t i = n_ - 1; i > 0; --i) {  // Fisher-Yates with an explicit draw (std::shuffle is unspecified)
    auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return perm;
}

Slice split(int64_t n, int64_t parts, int64_t i) {
  DAUG_CHECK(n >= 0 && parts >= 1 && i >= 0 && i < parts, "split: part ", i, " of ", parts, " of ", n, " items");
  const int64_t base = n / parts, extra = n % parts;
  return {i * base + std::min(i, extra), base + (i < extra ? 1 : 0)};
}

RankPart rank_part(const std::vector<int64_t>& batch, int rank, int world, int64_t accumulate) {
  const auto n = static_cast<int64_t>(batch.size());
  DAUG_CHECK(n >= 1 && world >= 1 && rank >= 0 && rank < world && accumulate >= 1, "rank_part: rank ", rank, " of ",
             world, ", a batch of ", n, ", accumulate ", accumulate);
  Slice s = split(n, world, rank);
  RankPart out;
  if (s.size == 0) {
    const Slice first = split(n, world, 0);
    s = split(first.size, std::min(accumulate, first.size), 0);
    out.padding = true;
  }
  out.offset = s.offset;
  out.items.assign(batch.begin() + s.offset, batch.begin() + s.offset + s.size);
  return out;
}

std::vector<int64_t> BatchSampler::batch(int64_t step) {
  const int64_t epoch = step / per_epoch_, pos = step % per_epoch_;
  if (epoch != cached_epoch_) {
    cached_ = permutation(epoch);
    cached_epoch_ = epoch;
  }
  const int64_t lo = pos * b_, hi = std::min(n_, (pos + 1) * b_);
  return {cached_.begin() + lo, cached_.begin() + hi};
}

}  // namespace daug::train
