#pragma once
/// One fuzz target = one parser entry point fed arbitrary bytes. The same source builds two ways:
///  * with DAUG_LIBFUZZER (the DAUG_FUZZ=ON clang build): LLVMFuzzerTestOneInput for libFuzzer;
///  * otherwise (the normal build): a registered function that fuzz/replay_test.cpp runs on every file of
///    fuzz/corpus/<name>/ and fuzz/regressions/<name>/, so CI replays every seed and every past crash.
/// Contract of a target body: a rejected input throws daug::Error (DataError, ConfigError ...); anything else
/// that escapes (std::out_of_range, c10::Error, bad_alloc ...) or a failed DAUG_FUZZ_ASSERT is a finding.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace daug::fuzz {

using TargetFn = void (*)(const uint8_t* data, size_t size);

/// Registry of the targets linked into the replay test (name -> body).
bool register_target(const char* name, TargetFn fn);
const std::map<std::string, TargetFn>& targets();

/// libFuzzer entry: runs `fn`; a daug::Error is a rejected input (returns 0); any other exception prints the
/// target, the exception and aborts, so libFuzzer records the input as a crash.
int run_input(const char* name, TargetFn fn, const uint8_t* data, size_t size);

/// A per-process scratch directory (removed at exit); the parsers under test read files, not buffers.
const std::filesystem::path& scratch_dir();
/// Writes `bytes` to scratch_dir()/name and returns the path.
std::filesystem::path write_scratch(const std::string& name, const void* bytes, size_t size);
/// Empties scratch_dir() (targets that write several files start from a clean directory).
void clear_scratch();

/// Splits a multi-file input at lines "%%" ("\n%%\n"): part 0 is the main file, part k the k-th extra file.
std::vector<std::string> split_parts(const uint8_t* data, size_t size);

/// A broken invariant in a target (not a rejected input): reported as a finding.
[[noreturn]] void invariant_failed(const char* target, const char* what, const char* file, int line);

}  // namespace daug::fuzz

#define DAUG_FUZZ_ASSERT(cond, target)                                              \
  do {                                                                              \
    if (!(cond)) ::daug::fuzz::invariant_failed(target, #cond, __FILE__, __LINE__); \
  } while (0)

#ifdef DAUG_LIBFUZZER
#define DAUG_FUZZ_TARGET(name)                                                \
  static void daug_fuzz_body_##name(const uint8_t* data, size_t size);        \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {   \
    return ::daug::fuzz::run_input(#name, daug_fuzz_body_##name, data, size); \
  }                                                                           \
  static void daug_fuzz_body_##name(const uint8_t* data, size_t size)
#else
#define DAUG_FUZZ_TARGET(name)                                         \
  static void daug_fuzz_body_##name(const uint8_t* data, size_t size); \
  [[maybe_unused]] static const bool daug_fuzz_registered_##name =     \
      ::daug::fuzz::register_target(#name, daug_fuzz_body_##name);     \
  static void daug_fuzz_body_##name(const uint8_t* data, size_t size)
#endif
