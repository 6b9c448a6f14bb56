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

/// What at::show_config() says about a LibTorch build.
struct LibTorchBuild {
  std::string version;  ///< TORCH_VERSION of its build settings ("1.13.0", "2.11.0"); "" when not stated
  bool cuda = false;    ///< USE_CUDA=ON (or 1/TRUE/True) in its build settings
  int cxx11_abi = -1;   ///< -D_GLIBCXX_USE_CXX11_ABI=N in its CXX_FLAGS; -1 when not stated
};
/// The LibTorch daug was built against (TORCH_VERSION, whether CMake found a CUDA build, the C++ ABI flag).
LibTorchBuild built_libtorch();
/// Parses the text of at::show_config() (its "Build settings:" line).
LibTorchBuild parse_torch_config(const std::string& show_config);
/// "" when `loaded` is the LibTorch daug was built for (TORCH_VERSION `built_version`, CUDA `built_cuda`, C++ ABI
/// `built_abi`); else a message saying what was expected, what was found, and what to do. Fields `loaded` does
/// not state are not compared.
std::string libtorch_mismatch(const LibTorchBuild& loaded, const std::string& built_version, bool built_cuda,
                              int built_abi);
/// Throws PluginError when the LibTorch loaded in this process (at::show_config()) is not the one daug and its
/// plugins were built for: a pip `torch` upgraded under a build keeps the unversioned sonames, so the dynamic
/// loader takes the new library and nothing else would notice. Checked once per process (load_all() calls it).
void check_loaded_libtorch();

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
