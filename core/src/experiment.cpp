// Builds components from config tables on demand (dependencies first), records the dependency graph, owns the
// components and destroys them in reverse order.
#include <daug/core/experiment.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/precision.h>
#include <daug/seed.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>

#include <algorithm>
#include <mutex>

namespace daug::core {
namespace {

/// Re-throws the current exception with `context` prefixed, keeping its daug error type.
[[noreturn]] void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const ConfigError& e) {
    throw ConfigError(context + e.what());
  } catch (const DataError& e) {
    throw DataError(context + e.what());
  } catch (const PluginError& e) {
    throw PluginError(context + e.what());
  } catch (const std::exception& e) {
    throw Error(context + e.what());
  }
}

/// Saves the global CPU generator's state and restores it on scope exit: a component built inside another's
/// create() must not move the RNG stream its parent initialises its weights from (build-order independence).
class CpuRngGuard {
 public:
  CpuRngGuard() : gen_(at::detail::getDefaultCPUGenerator()) {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    state_ = gen_.get_state();
  }
  ~CpuRngGuard() {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    gen_.set_state(state_);
  }
  CpuRngGuard(const CpuRngGuard&) = delete;
  CpuRngGuard& operator=(const CpuRngGuard&) = delete;

 private:
  at::Generator gen_;
  at::Tensor state_;
};

/// A CUDA device that this LibTorch cannot use is a config error now, not a dispatcher message from the first
/// tensor a plugin creates ("Could not run 'aten::empty.memory_format' with arguments from the 'CUDA' backend").
void check_cuda_device(const std::string& device, const std::string& where) {
  // The spelling first: "cuda:x" is a typo whatever the LibTorch build.
  int64_t index = 0;
  if (device != "cuda") {
    const std::string n = device.substr(device.find(':') == std::string::npos ? device.size() : device.find(':') + 1);
    if (device.rfind("cuda:", 0) != 0 || n.empty() || n.find_first_not_of("0123456789") != std::string::npos ||
        n.size() > 6)
      throw ConfigError(
          fmt::format("{}: [run].device must be \"cpu\", \"cuda\" or \"cuda:N\", but got \"{}\"", where, device));
    index = std::stoll(n);
  }
  // The CUDA device guard is registered by libtorch_cuda: absent means a CPU-only LibTorch.
  if (!c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA))
    throw ConfigError(
        fmt::format("{}: [run].device = \"{}\", but this LibTorch ({}) was built without CUDA; use "
                    "device = \"cpu\", or rebuild daug against a CUDA build of LibTorch",
                    where, device, TORCH_VERSION));
  const int64_t count = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->deviceCount();
  if (index >= count)
    throw ConfigError(fmt::format("{}: [run].device = \"{}\", but {} CUDA device(s) are visible{}", where, device,
                                  count, count == 0 ? " (no GPU, or CUDA_VISIBLE_DEVICES hides them)" : ""));
}

/// [run].tf32, cudnn_benchmark, deterministic: process-wide CUDA math switches (they have no effect on the CPU, so
/// they are only touched for a CUDA device). Defaults favour speed: TF32 matmuls/convolutions and cuDNN's autotuner
/// on, deterministic algorithms off; tf32 = false, cudnn_benchmark = false and deterministic = true give the
/// bitwise reproducibility that resume = bit-identical needs on CUDA. The legacy knobs are used on every LibTorch
/// version (2.9+ warns that they are deprecated; mixing them with the per-backend fp32_precision API would raise).
void apply_cuda_math(const ConfigView& run) {
  auto flag = [&](const char* key, bool def) { return run.exists() && run.has(key) ? run.get_bool(key) : def; };
  const bool tf32 = flag("tf32", true), benchmark = flag("cudnn_benchmark", true),
             deterministic = flag("deterministic", false);
  auto& ctx = at::globalContext();
  ctx.setAllowTF32CuBLAS(tf32);
  ctx.setAllowTF32CuDNN(tf32);
  ctx.setBenchmarkCuDNN(benchmark && !deterministic);
  ctx.setDeterministicCuDNN(deterministic);
  ctx.setDeterministicAlgorithms(deterministic, false);
  log::debug("CUDA math: tf32 {}, cudnn_benchmark {}, deterministic {}", tf32, benchmark && !deterministic,
             deterministic);
}

}  // namespace

Experiment::Experiment(const PluginLoader& loader, std::shared_ptr<const ConfigDocument> doc,
                       std::filesystem::path run_dir)
    : loader_(loader), doc_(std::move(doc)), run_dir_(std::move(run_dir)), device_("cpu") {
  ConfigView run(doc_, "run");
  if (run.exists()) {
    if (run.has("device")) device_ = run.get_string("device");
    if (run.has("seed")) {
      int64_t s = run.get_int("seed");
      if (s < 0) throw ConfigError(fmt::format("{}: [run].seed must be >= 0, but got {}", run.location("seed").str(), s));
      seed_ = static_cast<uint64_t>(s);
    }
  }
  if (!(device_ == "cpu" || device_.rfind("cuda", 0) == 0))
    throw ConfigError(fmt::format("{}: [run].device must be \"cpu\", \"cuda\" or \"cuda:N\", but got \"{}\"",
                                  run.location("device").str(), device_));
  if (device_ != "cpu") check_cuda_device(device_, run.location("device").str());
  // [run].precision is checked here even when no stage inherits it: a run-wide fp16 on the CPU is an error.
  run_precision_ = BuildContext::run_precision();
  check_precision_device(parse_precision(run_precision_.name, run_precision_.where), device_, run_precision_.where,
                         run_precision_.allow_emulated_bf16);
  if (device_ != "cpu") apply_cuda_math(run);
}

RunPrecision Experiment::run_precision() const {
  if (!building_.empty()) run_precision_readers_.insert(building_.back());
  return run_precision_;
}

bool Experiment::inherits_run_precision(const std::string& table) const {
  return run_precision_readers_.count(table) > 0;
}

Experiment::~Experiment() {
  // Reverse build order: a component is destroyed before the components it was built from.
  while (!built_.empty()) built_.pop_back();
}

ConfigView Experiment::config(const std::string& table) const {
  read_tables_.insert(table);
  return ConfigView(doc_, table);
}

std::shared_ptr<Component> Experiment::component_any(const std::string& table, const char* interface, Use use) {
  auto record_dep = [&] {
    if (building_.empty()) return;
    auto& deps = pending_deps_[building_.back()];
    for (auto& e : deps)
      if (e.table == table) {
        if (use == Use::all) e.use = Use::all;  // the widest use wins
        return;
      }
    deps.push_back(Edge{table, use});
  };
  for (const auto& b : built_)
    if (b.table == table) {
      record_dep();
      return b.component;
    }
  if (std::find(building_.begin(), building_.end(), table) != building_.end())
    throw ConfigError(fmt::format("dependency cycle between config tables: {} -> {}", fmt::join(building_, " -> "),
                                  table));
  ConfigView view(doc_, table);
  if (!view.exists()) {
    std::string who = building_.empty() ? std::string("the pipeline") : "[" + building_.back() + "]";
    throw ConfigError(fmt::format("{}: {} needs a {} from table [{}], but the config has no such table",
                                  doc_->main_file, who, interface, table));
  }
  if (!view.has("plugin"))
    throw ConfigError(fmt::format("{}: table [{}] must name its plugin (plugin = \"...\", a {} plugin)",
                                  view.location().str(), table, interface));
  const std::string name = view.get_string("plugin");
  const PluginInfo& info = loader_.find(interface, name, view.location("plugin").str());
  record_dep();
  std::unique_ptr<CpuRngGuard> rng_guard;
  if (!building_.empty()) rng_guard = std::make_unique<CpuRngGuard>();
  building_.push_back(table);
  // Reproducible initialisation: each component's random weights depend only on the run seed and its table name,
  // not on the order in which components happen to be built (stable_hash equals libstdc++'s std::hash, so seeds
  // are unchanged from earlier versions, but the same on every platform).
  at::manual_seed(seed_ ^ stable_hash(table));
  std::shared_ptr<Component> made;
  try {
    made = info.manifest->create(view, *this);
  } catch (...) {
    building_.pop_back();
    rethrow_with_context(fmt::format("while building [{}] (plugin '{}' from {}): ", table, name,
                                     info.library.string()));
  }
  building_.pop_back();
  if (!made)
    throw PluginError(fmt::format("plugin '{}' ({}) returned no object for [{}]", name, info.library.string(), table));
  log::debug("built [{}]: {}", table, made->describe());
  built_.push_back(Node{table, info, made, pending_deps_[table]});
  return made;
}

const Experiment::Node* Experiment::node(const std::string& table) const {
  for (const auto& b : built_)
    if (b.table == table) return &b;
  return nullptr;
}

std::vector<std::tuple<std::string, std::string, std::filesystem::path>> Experiment::built() const {
  std::vector<std::tuple<std::string, std::string, std::filesystem::path>> out;
  for (const auto& b : built_) out.emplace_back(b.table, b.plugin.name, b.plugin.library);
  return out;
}

std::vector<std::string> Experiment::dependencies_of(const std::string& table) const {
  std::vector<std::string> out;
  if (const Node* n = node(table))
    for (const auto& e : n->deps) out.push_back(e.table);
  return out;
}

std::string Experiment::effective_options(const std::string& table, OptionScope scope) const {
  const Node* n = node(table);
  DAUG_CHECK(n != nullptr, "effective_options: table [", table, "] was not built");
  DAUG_CHECK(n->plugin.manifest && n->plugin.manifest->effective, "plugin '", n->plugin.name,
             "' has no effective-options function");
  return n->plugin.manifest->effective(ConfigView(doc_, table), scope);
}

std::string Experiment::effective_toml() const {
  std::string out = "# Every option of every built table, defaults included (what actually ran).\n";
  for (const auto& b : built_)
    out += fmt::format("\n[{}]\nplugin = \"{}\"  # {} ({})\n{}", b.table, b.plugin.name, b.plugin.interface,
                       b.plugin.build_id, effective_options(b.table, OptionScope::everything));
  return out;
}

void Experiment::check_all_tables_used(const std::vector<std::string>& also_used) const {
  std::vector<std::string> used(also_used.begin(), also_used.end());
  for (const auto& b : built_) used.push_back(b.table);
  used.insert(used.end(), read_tables_.begin(), read_tables_.end());
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  for (const auto& [key, node] : doc_->root) {
    if (!node.is_table()) continue;
    const std::string name(key.str());
    if (std::find(used.begin(), used.end(), name) != used.end()) continue;
    ConfigView view(doc_, name);
    std::string hint = closest_match(name, used);
    throw ConfigError(fmt::format(
        "{}: table [{}] is not used by any stage of [run].stages or by any component they use{}; remove it, fix its "
        "name, or add its stage to [run].stages. Used tables: {}",
        view.location().str(), name, hint.empty() ? "" : fmt::format(" (did you mean [{}]?)", hint),
        fmt::join(used, ", ")));
  }
}

}  // namespace daug::core
