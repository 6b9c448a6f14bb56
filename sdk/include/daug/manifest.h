#pragma once
/// The handshake a plugin library exports (one per library) and the loader checks before using it.
#include <daug/api.h>
#include <daug/options.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace daug {

class BuildContext;
class Component;
class ConfigView;

struct PluginManifest {
  uint32_t manifest_size;     ///< sizeof(PluginManifest) when built: a layout check
  uint32_t abi_version;       ///< DAUG_SDK_ABI_VERSION when built
  const char* torch_version;  ///< TORCH_VERSION when built, e.g. "1.13.1"
  int cxx11_abi;              ///< _GLIBCXX_USE_CXX11_ABI when built
  const char* interface;      ///< Interface::kInterface, e.g. "Guidance"
  const char* name;           ///< registry name, e.g. "softmax"
  const char* summary;        ///< one line for `daug plugins list`
  /// Reads Options from `cfg` (rejecting unknown keys) and builds the component.
  std::shared_ptr<Component> (*create)(const ConfigView& cfg, BuildContext& ctx);
  /// Options with types, defaults and docs.
  std::vector<OptionInfo> (*describe)();
  /// Reads Options from `cfg` (validated as create() does) and returns every value, defaults included, as
  /// TOML `key = value` lines of the options in `scope`. The core writes OptionScope::everything to
  /// effective.toml and keys the stage cache on OptionScope::results / ::model.
  std::string (*effective)(const ConfigView& cfg, OptionScope scope);
};

/// Name of the exported C symbol that returns the manifest.
inline constexpr const char* kManifestSymbol = "daug_plugin_manifest";

}  // namespace daug
