// The epoch sampler: each epoch is a permutation, drop_last, and both seed policies reproduce the batch orders the
// stages used before libs/train (the old functions are copied below as the reference).
#include <daug/train/sampler.h>
#include <daug/seed.h>

#include <cstdint>
#include <functional>
#include <string>

#include <daug/error.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>

using namespace daug::train;

namespace {

// ---- libs/stages/training.cpp before libs/train (train_classifier, train_diffusion), verbatim but for names.
uint64_t old_mix_seed(uint64_t seed, uint64_t salt) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (salt + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
std::vector<int64_t> old_batch_indices(int64_t n, int64_t batch_size, uint64_t seed, int64_t step) {
  const int64_t b = std::min(batch_size, n);
  const int64_t per_epoch = std::max<int64_t>(1, n / b);
  const int64_t epoch = step / per_epoch, pos = step % per_epoch;
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::mt19937_64 rng(old_mix_seed(seed, 0x5eed0000ULL + static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i) {
    auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return {perm.begin() + pos * b, perm.begin() + (pos + 1) * b};
}

// ---- plugins/stage_train_clip/train_clip_stage.cpp before libs/train, verbatim but for names.
std::vector<int64_t> old_epoch_order(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(epoch));
  for (size_t i = n; i > 1; --i) {
    const size_t j = static_cast<size_t>(rng() % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}
std::vector<int64_t> old_clip_batch(int64_t n, int64_t bs, bool drop_last, uint64_t seed, int64_t step) {
  const int64_t per_epoch = drop_last ? n / bs : (n + bs - 1) / bs;
  const int64_t epoch = step / per_epoch, in_epoch = step % per_epoch;
  auto order = old_epoch_order(static_cast<size_t>(n), seed, epoch);
  std::vector<int64_t> out;
  for (int64_t i = in_epoch * bs; i < std::min(n, (in_epoch + 1) * bs); ++i) out.push_back(order[static_cast<size_t>(i)]);
  return out;
}

}  // namespace

// The component seeds (run seed ^ hash(table)) must not change with the move from std::hash to the portable
// stable_hash: on libstdc++ (what the project builds with) they are the same function, for every length mod 8.
TEST(Seed, StableHashEqualsLibstdcxxStdHashOnItsOwnPlatform) {
#if defined(__GLIBCXX__) && UINT64_MAX == SIZE_MAX
  for (const std::string s : {"", "a", "data", "classifier", "generator", "guidance", "composer", "clip_composer",
                              "train_classifier", "a string longer than sixteen bytes, with UTF-8: ü"})
    EXPECT_EQ(daug::stable_hash(s), std::hash<std::string>{}(s)) << s;
#else
  GTEST_SKIP() << "std::hash is implementation-defined; stable_hash is defined as libstdc++'s 64-bit MurmurHash";
#endif
  EXPECT_EQ(daug::stable_hash("data"), daug::stable_hash(std::string("data")));
}

TEST(Seed, MixSeedIsSplitmix) {
  for (uint64_t s : {0ULL, 1ULL, 11ULL, 0xFFFFFFFFFFFFFFFFULL})
    for (uint64_t salt : {0ULL, 7ULL, 0x5eed0003ULL}) EXPECT_EQ(daug::mix_seed(s, salt), old_mix_seed(s, salt));
}

TEST(Sampler, EachEpochIsAPermutationCutIntoBatches) {
  for (SeedPolicy policy : {SeedPolicy::mix, SeedPolicy::linear})
    for (bool drop_last : {true, false}) {
      BatchSampler s(10, 3, drop_last, 5, policy);
      EXPECT_EQ(s.steps_per_epoch(), drop_last ? 3 : 4);
      for (int64_t epoch = 0; epoch < 3; ++epoch) {
        auto perm = s.permutation(epoch);
        std::vector<int64_t> sorted = perm;
        std::sort(sorted.begin(), sorted.end());
        std::vector<int64_t> iota(10);
        std::iota(iota.begin(), iota.end(), 0);
        EXPECT_EQ(sorted, iota);
        std::vector<int64_t> seen;
        for (int64_t k = 0; k < s.steps_per_epoch(); ++k) {
          auto b = s.batch(epoch * s.steps_per_epoch() + k);
          EXPECT_EQ(static_cast<int64_t>(b.size()), (!drop_last && k == 3) ? 1 : 3);
          seen.insert(seen.end(), b.begin(), b.end());
        }
        // The batches of an epoch are the permutation's prefix (drop_last: 9 of 10 items, no repeats).
        EXPECT_EQ(seen, std::vector<int64_t>(perm.begin(), perm.begin() + static_cast<int64_t>(seen.size())));
      }
      EXPECT_NE(s.permutation(0), s.permutation(1));  // each epoch reshuffles
    }
}

TEST(Sampler, BatchClampedToTheDataset) {
  BatchSampler s(3, 8, true, 0, SeedPolicy::mix);
  EXPECT_EQ(s.batch_size(), 3);
  EXPECT_EQ(s.steps_per_epoch(), 1);
  EXPECT_EQ(s.batch(0).size(), 3u);
  EXPECT_THROW(BatchSampler(0, 8, true, 0, SeedPolicy::mix), daug::ConfigError);
  EXPECT_THROW(BatchSampler(4, 0, true, 0, SeedPolicy::mix), daug::ConfigError);
}

TEST(Sampler, MixPolicyReproducesTheClassifierAndDiffusionOrder) {
  for (int64_t n : {1, 5, 10, 37})
    for (int64_t bs : {1, 3, 8, 48})
      for (uint64_t seed : {0ULL, 11ULL, 123456789ULL}) {
        BatchSampler s(n, bs, /*drop_last=*/true, seed, SeedPolicy::mix);
        for (int64_t step = 0; step < 25; ++step)
          ASSERT_EQ(s.batch(step), old_batch_indices(n, bs, seed, step)) << n << " " << bs << " " << seed << " " << step;
      }
}

TEST(Sampler, LinearPolicyReproducesTheTrainClipOrder) {
  for (int64_t n : {2, 8, 13, 40})
    for (int64_t bs : {2, 4, 32})
      for (bool drop_last : {true, false}) {
        if (drop_last && n < bs) continue;  // train_clip refuses this case before sampling
        for (uint64_t seed : {0ULL, 42ULL, 0xFFFFFFFFFFULL}) {
          BatchSampler s(n, bs, drop_last, seed, SeedPolicy::linear);
          for (int64_t step = 0; step < 20; ++step)
            ASSERT_EQ(s.batch(step), old_clip_batch(n, bs, drop_last, seed, step))
                << n << " " << bs << " " << drop_last << " " << seed << " " << step;
        }
      }
}

// The distributed sampler: every rank takes its slice of the same step batch; over an epoch the ranks' slices are
// disjoint and cover every item of the epoch's batches exactly once (all n items without drop_last, n - n % b with
// it), for several world sizes, including uneven slices and (drop_last = false) a last batch shorter than the
// number of ranks, where the ranks without items get a padding part that repeats rank 0's items.
TEST(BatchSampler, RankSlicesCoverEveryItemOncePerEpoch) {
  for (bool drop_last : {true, false})
    for (int64_t n : {11, 12, 13})
      for (int world : {1, 2, 3, 4, 5}) {
        const int64_t b = 5;
        BatchSampler s(n, b, drop_last, 9, SeedPolicy::mix);
        const std::string what =
            "n " + std::to_string(n) + " world " + std::to_string(world) + (drop_last ? " drop_last" : "");
        for (int64_t epoch = 0; epoch < 2; ++epoch) {
          std::vector<int> seen(static_cast<size_t>(n), 0);
          for (int64_t step = epoch * s.steps_per_epoch(); step < (epoch + 1) * s.steps_per_epoch(); ++step) {
            const std::vector<int64_t> batch = s.batch(step);
            int64_t next = 0;  // the slices follow each other in rank order
            for (int r = 0; r < world; ++r) {
              const RankPart p = rank_part(batch, r, world, 2);
              ASSERT_FALSE(p.items.empty()) << what;
              if (p.padding) {
                EXPECT_LT(static_cast<int64_t>(batch.size()), world) << what;
                EXPECT_EQ(p.offset, 0) << what;
                EXPECT_EQ(p.items.front(), batch.front()) << what;
                continue;
              }
              EXPECT_EQ(p.offset, next) << what;
              next += static_cast<int64_t>(p.items.size());
              const auto even = static_cast<int64_t>(batch.size()) / world;
              EXPECT_TRUE(static_cast<int64_t>(p.items.size()) == even ||
                          static_cast<int64_t>(p.items.size()) == even + 1)
                  << what;
              for (int64_t i : p.items) ++seen[static_cast<size_t>(i)];
            }
            EXPECT_EQ(next, static_cast<int64_t>(batch.size())) << what;
          }
          const int64_t covered = std::count(seen.begin(), seen.end(), 1);
          EXPECT_EQ(covered, drop_last ? n - n % b : n) << what << " epoch " << epoch;
          EXPECT_EQ(std::count_if(seen.begin(), seen.end(), [](int c) { return c > 1; }), 0) << what;
        }
      }
  EXPECT_EQ(split(6, 4, 0).size, 2);
  EXPECT_EQ(split(6, 4, 3).offset, 5);
  EXPECT_EQ(split(6, 4, 3).size, 1);
}
