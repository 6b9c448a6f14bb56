// Run precision: names, device rules, the CPU's bf16 support and the autocast guard. See daug/precision.h.
#include <daug/build_context.h>
#include <daug/error.h>
#include <daug/precision.h>

#include <ATen/autocast_mode.h>
#include <c10/core/ScalarType.h>
#include <fmt/format.h>
#include <torch/version.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace daug {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::bf16:
      return "bf16";
    case Precision::fp16:
      return "fp16";
    default:
      return "fp32";
  }
}

Precision parse_precision(const std::string& name, const std::string& where) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  if (name == "fp16") return Precision::fp16;
  throw ConfigError(fmt::format("{} = \"{}\": must be \"fp32\", \"bf16\" or \"fp16\"", where, name));
}

bool cpu_has_bf16() {
  if (const char* env = std::getenv("DAUG_CPU_BF16"); env != nullptr && *env != '\0') return env[0] == '1';
  static const bool has = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line);
      std::string w;
      while (words >> w)
        if (w == "avx512_bf16" || w == "amx_bf16") return true;
      return false;  // the first CPU's flags speak for all
    }
    return false;
  }();
  return has;
}

void check_precision_device(Precision p, const std::string& device, const std::string& where,
                            bool allow_emulated_bf16) {
  if (device.rfind("cuda", 0) == 0 || p == Precision::fp32) return;
  if (p == Precision::fp16)
    throw ConfigError(fmt::format(
        "{} = \"fp16\" needs a CUDA device, but [run].device = \"{}\" (LibTorch's CPU kernels have no float16 "
        "convolution or matmul); use \"bf16\" or \"fp32\" on the CPU",
        where, device));
  if (!cpu_has_bf16() && !allow_emulated_bf16)
    throw ConfigError(fmt::format(
        "{} = \"bf16\" on [run].device = \"{}\", but this CPU has no bf16 instructions (neither avx512_bf16 nor "
        "amx_bf16 in /proc/cpuinfo): LibTorch would emulate bf16, slower than fp32; use \"fp32\", or set "
        "[run].allow_emulated_bf16 = true to run it anyway (tests)",
        where, device));
}

RunPrecision BuildContext::run_precision() const {
  RunPrecision r;
  try {
    const ConfigView run = config("run");
    if (!run.exists()) return r;
    if (run.has("precision")) r.name = run.get_string("precision");
    r.where = fmt::format("{}: [run].precision", run.location("precision").str());
    if (run.has("allow_emulated_bf16")) r.allow_emulated_bf16 = run.get_bool("allow_emulated_bf16");
  } catch (const ConfigError&) {  // a context without a config document (tests, code-built components)
  }
  return r;
}

Precision stage_precision(BuildContext& ctx, const std::string& own, const std::string& key) {
  if (own.empty()) {
    const RunPrecision run = ctx.run_precision();  // the core records that this table inherits it
    const Precision p = parse_precision(run.name, run.where);
    check_precision_device(p, ctx.device(), run.where, run.allow_emulated_bf16);
    return p;
  }
  // Own option: only [run].allow_emulated_bf16 is read, through the base implementation, which records nothing
  // (the run precision must not enter this table's cache key).
  const RunPrecision run = ctx.BuildContext::run_precision();
  const std::string where = ctx.where(key);
  const Precision p = parse_precision(own, where);
  check_precision_device(p, ctx.device(), where, run.allow_emulated_bf16);
  return p;
}

// LibTorch 2.4 replaced the per-device functions (set_cpu_enabled, set_autocast_gpu_dtype, ...) by ones taking the
// device type; the old ones are deprecated there.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DAUG_AUTOCAST_DEVICE_API 1
#endif

namespace {
bool autocast_enabled(bool cuda) {
#ifdef DAUG_AUTOCAST_DEVICE_API
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}
void set_autocast_enabled(bool cuda, bool on) {
#ifdef DAUG_AUTOCAST_DEVICE_API
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on);
#else
  if (cuda) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
#endif
}
at::ScalarType autocast_dtype(bool cuda) {
#ifdef DAUG_AUTOCAST_DEVICE_API
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}
void set_autocast_dtype(bool cuda, at::ScalarType t) {
#ifdef DAUG_AUTOCAST_DEVICE_API
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, t);
#else
  if (cuda) at::autocast::set_autocast_gpu_dtype(t);
  else at::autocast::set_autocast_cpu_dtype(t);
#endif
}
}  // namespace

AutocastGuard::AutocastGuard(Precision p, const std::string& device) {
  if (p == Precision::fp32) return;
  cuda_ = device.rfind("cuda", 0) == 0;
  prev_enabled_ = autocast_enabled(cuda_);
  prev_dtype_ = static_cast<int>(autocast_dtype(cuda_));
  set_autocast_dtype(cuda_, p == Precision::bf16 ? at::kBFloat16 : at::kHalf);
  set_autocast_enabled(cuda_, true);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // As torch.autocast.__exit__: the cast weights are cached inside the outermost region only.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast_enabled(cuda_, prev_enabled_);
  set_autocast_dtype(cuda_, static_cast<at::ScalarType>(prev_dtype_));
}

}  // namespace daug
