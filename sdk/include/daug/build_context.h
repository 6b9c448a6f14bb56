#pragma once
/// What a plugin's `create()` receives besides its Options: shared dependencies by table name, the device,
/// the seed and the run directory. Implemented by the core's Experiment; tests and examples/ may implement
/// it too (see tests/support).
#include <daug/api.h>
#include <daug/component.h>
#include <daug/config_view.h>
#include <daug/error.h>
#include <daug/precision.h>

#include <filesystem>
#include <memory>
#include <string>
#include <typeinfo>

namespace daug {

/// How the requester uses a component; it decides which of the component's options enter the requester's cache
/// key. `model`: only what defines the model (options marked `Check::sampling_only()` are left out, e.g. a
/// Generator's respacing when a training stage asks for it). `all`: every option.
enum class Use { all, model };

class DAUG_SDK_API BuildContext {
 public:
  virtual ~BuildContext();

  /// The component configured in table `table` (e.g. "classifier"), built on first request and shared
  /// afterwards. Throws ConfigError if the table is missing, or if it builds something that is not a `T`.
  /// The request is recorded: it is how a plugin declares its dependencies (once, in create()).
  ///
  /// Example:  auto clf = ctx.component<daug::Classifier>(opts.classifier);
  ///           auto gen = ctx.component<daug::Generator>(opts.generator, daug::Use::model);  // trains it
  template <class T>
  std::shared_ptr<T> component(const std::string& table, Use use = Use::all) {
    auto base = component_any(table, T::kInterface, use);
    auto typed = std::dynamic_pointer_cast<T>(base);
    DAUG_CHECK_AS(ConfigError, typed != nullptr, "[", table, "] must configure a ", T::kInterface,
                  " plugin, but its plugin builds '", base ? base->describe() : std::string("nothing"), "'");
    return typed;
  }

  /// Device string from the config: "cpu", "cuda", "cuda:1". Plugins create tensors and modules there.
  virtual std::string device() const = 0;
  /// Global seed from the config.
  virtual uint64_t seed() const = 0;
  /// A seed for `purpose` within the component being built, derived from the run seed and table() with a
  /// portable hash (the same on every platform and standard library). Use it instead of the global RNG.
  uint64_t seed_for(const std::string& purpose) const;
  /// This run's directory. `daug run` creates it only once the whole configuration has been built and checked, so
  /// it may not exist yet inside create(); stages write their outputs under their own stage directories instead.
  virtual std::filesystem::path run_dir() const = 0;
  /// The resolved configuration, for stages that read other tables (e.g. a list of prompts).
  virtual ConfigView config(const std::string& table) const = 0;
  /// Name of the config table whose plugin is being built right now (e.g. "clip_composer"), so that a
  /// constructor's error names the table the user wrote, not a guess. Empty outside a build.
  virtual std::string table() const = 0;
  /// table(), or `fallback` outside a build (e.g. a test context that never set one).
  std::string table_or(const std::string& fallback) const {
    std::string t = table();
    return t.empty() ? fallback : t;
  }
  /// "file:line:col: [table].key" of an option of the table being built (its table's location when the key was
  /// not written), for checks that need more than the option itself (another component, the device):
  ///   throw daug::ConfigError(ctx.where("compute_dtype") + " = \"float16\" needs a CUDA device, but ...");
  std::string where(const std::string& key) const;
  /// [run].precision with its location and [run].allow_emulated_bf16 (defaults "fp32"/false without a [run]
  /// table or a config document). The core also records that the table being built inherits the run precision,
  /// so that it enters that table's cache key: call it through stage_precision() (daug/precision.h), and only
  /// when the table's own option does not decide.
  virtual RunPrecision run_precision() const;

 protected:
  /// Builds or returns the component of `table`; `interface` is the expected kind for messages.
  virtual std::shared_ptr<Component> component_any(const std::string& table, const char* interface, Use use) = 0;
};

}  // namespace daug
