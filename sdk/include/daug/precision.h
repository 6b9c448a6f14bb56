#pragma once
/// Numeric precision of a run (`[run].precision`, overridable by a stage's own `precision` option) and the
/// autocast guard that applies it.
///
/// Design: the precision belongs to the stage that calls the models, not to the components. A stage resolves its
/// option with `stage_precision(ctx, opts.precision)` in create() (that also records, for the cache key, that the
/// stage inherited [run].precision) and runs its forward passes inside an `AutocastGuard`; the models themselves
/// stay float32 (their weights are the float32 masters) and keep GroupNorm, softmax and their outputs in float32
/// explicitly where it matters. Under the guard LibTorch's autocast runs the matmul-like ops (conv, linear, matmul,
/// bmm) in the reduced type; elementwise arithmetic (the diffusion sampler's state and schedule algebra) stays in
/// the type of its inputs, float32.
///
/// Device rules (checked while the config is built, with the key's file:line):
///   fp32  everywhere; the default, bit-identical to builds without this option;
///   bf16  CUDA; the CPU only if it has bf16 instructions (avx512_bf16 or amx_bf16 in /proc/cpuinfo), or with
///         `[run].allow_emulated_bf16 = true` (LibTorch then runs correct but slow emulated bf16 kernels: tests);
///   fp16  CUDA only (LibTorch's CPU kernels have no float16 convolution or matmul).
#include <daug/api.h>

#include <string>

namespace daug {

class BuildContext;

enum class Precision { fp32, bf16, fp16 };

/// "fp32", "bf16", "fp16".
DAUG_SDK_API const char* precision_name(Precision p);
/// Parses "fp32" | "bf16" | "fp16"; ConfigError "<where> = "x": must be ..." otherwise.
DAUG_SDK_API Precision parse_precision(const std::string& name, const std::string& where);

/// True when this CPU executes bf16 natively (/proc/cpuinfo lists avx512_bf16 or amx_bf16). Overridable for tests
/// with the environment variable DAUG_CPU_BF16=0|1.
DAUG_SDK_API bool cpu_has_bf16();

/// Throws ConfigError naming `where` (the key that chose `p`) if `p` cannot run on `device` (rules above).
DAUG_SDK_API void check_precision_device(Precision p, const std::string& device, const std::string& where,
                                         bool allow_emulated_bf16);

/// The [run] settings a stage's precision falls back to (see BuildContext::run_precision()).
struct RunPrecision {
  std::string name = "fp32";              ///< [run].precision
  std::string where = "[run].precision";  ///< its "file:line:col: [run].precision" for messages
  bool allow_emulated_bf16 = false;       ///< [run].allow_emulated_bf16
};

/// A stage's `precision` option (`own`, key `key` of the table being built) resolved: "" = [run].precision.
/// Validates the name and the device (ConfigError with the file:line of the key that set it). Call it in create().
DAUG_SDK_API Precision stage_precision(BuildContext& ctx, const std::string& own, const std::string& key = "precision");

/// Autocast for `p` on `device` ("cpu", "cuda", "cuda:N") while it lives; fp32 does nothing (no dispatch change,
/// so fp32 results are bit-identical to code without the guard). Restores the previous autocast state (enabled
/// flag and dtype of that device type) on destruction, and clears LibTorch's autocast weight-cast cache when the
/// outermost guard ends (weights change between training steps). Per thread, like LibTorch's autocast.
/// Run backward() outside the guard, as PyTorch recommends.
class DAUG_SDK_API AutocastGuard {
 public:
  AutocastGuard(Precision p, const std::string& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool prev_enabled_ = false;
  int prev_dtype_ = 0;  // at::ScalarType of the previous autocast dtype (kept out of this header)
};

}  // namespace daug
