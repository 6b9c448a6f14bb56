#pragma once
/// Finds plugin libraries (libdaug-plugin-*.so), opens them with Boost.DLL, checks the ABI handshake and indexes them
/// by (interface, name).
///
/// Lifetime rule: libraries are NEVER unloaded. LibTorch registers operators and state in static objects and
/// unloading a library that used it crashes (pytorch#61111, #46171); every component built from a plugin also
/// keeps code from that library alive. The handles are deliberately leaked at exit.
#include <daug/config_view.h>
#include <daug/manifest.h>

#include <deque>
#include <filesystem>
#include <string>
#include <vector>

namespace daug::core {

struct PluginInfo {
  std::string interface;
  std::string name;
  std::string summary;
  std::filesystem::path library;
  const PluginManifest* manifest = nullptr;
  /// Content hash of the library file (hex): a rebuilt plugin with changed code or defaults gets a new id, which
  /// invalidates the cached stage outputs it contributed to.
  std::string build_id;
};

class PluginLoader {
 public:
  /// Search order: `extra` (--plugin-path), then DAUG_PLUGIN_PATH (':'-separated), then the plugins of this
  /// daug: the build tree's plugin dir, or <prefix>/lib/daug/plugins of an installed daug. The directories of
  /// `extra` and DAUG_PLUGIN_PATH must exist (load_all() throws ConfigError otherwise).
  explicit PluginLoader(std::vector<std::filesystem::path> extra = {});

  /// The directories that will be searched, in order (existing or not).
  const std::vector<std::filesystem::path>& search_paths() const { return paths_; }

  /// Opens every libdaug-plugin-*.so in the search paths. The first bad library throws PluginError (not a whole
  /// ELF shared object for this machine, wrong ABI, no manifest, duplicate name naming both files). Idempotent.
  void load_all();
  /// Opens one library file explicitly (tests, `--plugin` flags).
  const PluginInfo& load_library(const std::filesystem::path& file);

  /// The plugin `name` of `interface`; throws ConfigError "<where>: no <interface> plugin named 'x'.
  /// Available: a, b. Did you mean 'y'?".
  const PluginInfo& find(const std::string& interface, const std::string& name, const std::string& where) const;
  /// Any plugin called `name`, whatever its interface (for `daug plugins describe`).
  const PluginInfo& find_any(const std::string& name) const;
  std::vector<PluginInfo> list() const;

 private:
  std::vector<std::filesystem::path> paths_;
  std::vector<std::string> origins_;  // parallel to paths_: where a required directory came from; "" = optional
  std::deque<PluginInfo> plugins_;  // deque: references handed out by find() stay valid as libraries load
  bool scanned_ = false;
};

}  // namespace daug::core
