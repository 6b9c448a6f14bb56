#pragma once
/// Small, dependency-free hashes for deterministic choices (splits, report templates).
#include <cstdint>
#include <string>

namespace daug::data {

/// SHA-256 of `bytes` as 64 lower-case hex digits (FIPS 180-4).
std::string sha256_hex(const std::string& bytes);

/// 64-bit FNV-1a of `bytes` (offset basis 14695981039346656037, prime 1099511628211).
uint64_t fnv1a64(const std::string& bytes);

/// Patient-level split bucket as used by the embedded NIH sample:
/// int(first 8 hex digits of SHA-256(key), 16) % 100.
int sha256_bucket100(const std::string& key);

}  // namespace daug::data
