#pragma once
/// Portable seeds: the same numbers on every platform, compiler and standard library (std::hash is not).
#include <daug/api.h>

#include <cstdint>
#include <string_view>

namespace daug {

/// 64-bit hash of `bytes`: MurmurHash64A as libstdc++'s std::hash<std::string> computes it on 64-bit targets
/// (seed 0xc70f6907), written out with explicit little-endian loads. Runs seeded with
/// `seed ^ std::hash<std::string>(table)` before therefore keep their exact numbers.
DAUG_SDK_API uint64_t stable_hash(std::string_view bytes);

/// splitmix64 of (seed, salt): decorrelated per-step / per-epoch / per-purpose seeds.
DAUG_SDK_API uint64_t mix_seed(uint64_t seed, uint64_t salt);

}  // namespace daug
