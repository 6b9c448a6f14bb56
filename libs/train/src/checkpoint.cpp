// The training checkpoint layout. See daug/train/checkpoint.h.
#include <daug/train/checkpoint.h>

#include <daug/checkpoint.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <mutex>

namespace daug::train {

void save_checkpoint(const std::filesystem::path& path, const CheckpointInfo& info, const NamedTensors& model,
                     const NamedTensors& optimizer, const NamedTensors& ema, const at::Tensor& rng) {
  NamedTensors all;
  all.reserve(model.size() + optimizer.size() + ema.size() + 1);
  for (const auto& [k, t] : model) all.emplace_back(kModelPrefix + k, t.detach().cpu());
  for (const auto& kv : optimizer) all.push_back(kv);
  for (const auto& kv : ema) all.push_back(kv);
  if (rng.defined()) all.emplace_back(kRngKey, rng);
  std::map<std::string, std::string> meta = info.extra;
  meta["step"] = std::to_string(info.step);
  meta["total_steps"] = std::to_string(info.total_steps);
  meta["seed"] = std::to_string(info.seed);
  meta["stage"] = info.stage;
  meta["complete"] = info.complete ? "true" : "false";
  if (!path.parent_path().empty()) std::filesystem::create_directories(path.parent_path());
  save_safetensors(path, all, meta);
}

namespace {
const std::string& meta_of(const std::map<std::string, std::string>& m, const char* key, const std::string& src) {
  auto it = m.find(key);
  DAUG_CHECK_AS(DataError, it != m.end(), src, ": missing metadata key '", key,
                "' (not a daug training checkpoint, or one written by an older daug; delete it to start over)");
  return it->second;
}
int64_t int_of(const std::map<std::string, std::string>& m, const char* key, const std::string& src) {
  const std::string& v = meta_of(m, key, src);
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw DataError(fmt::format("{}: metadata key '{}' must be an integer, but is '{}'", src, key, v));
}
}  // namespace

TrainCheckpoint load_checkpoint(const std::filesystem::path& path) {
  const std::string src = path.string();
  SafetensorsFile f = load_safetensors(path);  // DataError naming file and key on a truncated/malformed file
  TrainCheckpoint ck;
  ck.info.step = int_of(f.metadata, "step", src);
  ck.info.total_steps = int_of(f.metadata, "total_steps", src);
  ck.info.stage = meta_of(f.metadata, "stage", src);
  auto seed = f.metadata.find("seed");
  if (seed != f.metadata.end()) {
    // strtoull with an end check: std::stoull read "12abc" as 12 and "-1" as 2^64 - 1.
    const std::string& v = seed->second;
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = v.empty() || v[0] == '-' ? 0 : std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || !std::isdigit(static_cast<unsigned char>(v[0])) || end != v.c_str() + v.size() ||
        errno == ERANGE)
      throw DataError(fmt::format("{}: metadata key 'seed' must be a non-negative integer, but is '{}'", src, v));
    ck.info.seed = static_cast<uint64_t>(x);
  }
  auto complete = f.metadata.find("complete");
  ck.info.complete = complete != f.metadata.end() && complete->second == "true";
  for (const auto& [k, v] : f.metadata)
    if (k != "step" && k != "total_steps" && k != "stage" && k != "seed" && k != "complete") ck.info.extra[k] = v;
  const std::string prefix = kModelPrefix;
  for (auto& [k, t] : f.tensors) {
    if (k.rfind(prefix, 0) == 0) ck.model.emplace_back(k.substr(prefix.size()), t);
    else if (k == kRngKey) ck.rng = t;
    else ck.state.emplace_back(k, t);
  }
  return ck;
}

NamedTensors model_state(const NamedTensors& tensors) {
  const std::string prefix = kModelPrefix;
  NamedTensors out;
  for (const auto& [k, t] : tensors)
    if (k.rfind(prefix, 0) == 0) out.emplace_back(k.substr(prefix.size()), t);
  return out;
}

at::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const at::Tensor& state, const std::string& source) {
  DAUG_CHECK_AS(DataError, state.defined() && state.scalar_type() == at::kByte && state.dim() == 1, source,
                ": key '", kRngKey, "' must be a 1-d uint8 tensor");
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  try {
    gen.set_state(state);
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: key '{}' is not a CPU generator state ({})", source, kRngKey, e.what()));
  }
}

}  // namespace daug::train
