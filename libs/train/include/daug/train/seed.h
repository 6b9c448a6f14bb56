#pragma once
/// Seed derivation shared by the training loop, the sampler and the stages.
#include <cstdint>

namespace daug::train {

/// A 64-bit mix of (seed, salt) (splitmix64 finaliser), for per-step / per-epoch / per-purpose seeds.
uint64_t mix_seed(uint64_t seed, uint64_t salt);

}  // namespace daug::train
