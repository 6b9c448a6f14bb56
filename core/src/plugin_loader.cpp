// Plugin discovery and loading with Boost.DLL; ABI handshake; registry by (interface, name).
#include <daug/core/plugin_loader.h>
#include <daug/error.h>

#include <boost/dll/shared_library.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

namespace daug::core {
namespace {

/// Handles are intentionally leaked: plugin libraries stay mapped until the process exits (see header).
std::vector<boost::dll::shared_library*>& open_libraries() {
  static auto* libs = new std::vector<boost::dll::shared_library*>();
  return *libs;
}

std::string canonical_string(const std::filesystem::path& p) {
  std::error_code ec;
  auto c = std::filesystem::weakly_canonical(p, ec);
  return ec ? p.string() : c.string();
}

/// FNV-1a 64 of a file's bytes, as 16 hex digits (plugin libraries are a few MiB: milliseconds).
std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw PluginError(fmt::format("{}: cannot read the plugin library to fingerprint it", path));
  uint64_t h = 1469598103934665603ull;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buf[static_cast<size_t>(i)]);
      h *= 1099511628211ull;
    }
  }
  return fmt::format("{:016x}", h);
}

}  // namespace

PluginLoader::PluginLoader(std::vector<std::filesystem::path> extra) : paths_(std::move(extra)) {
  if (const char* env = std::getenv("DAUG_PLUGIN_PATH")) {
    std::string s = env;
    size_t start = 0;
    while (start <= s.size()) {
      size_t p = s.find(':', start);
      std::string part = s.substr(start, p == std::string::npos ? std::string::npos : p - start);
      if (!part.empty()) paths_.emplace_back(part);
      if (p == std::string::npos) break;
      start = p + 1;
    }
  }
  paths_.emplace_back(DAUG_BUILD_PLUGIN_DIR);
  paths_.emplace_back(DAUG_INSTALL_PLUGIN_DIR);
}

const PluginInfo& PluginLoader::load_library(const std::filesystem::path& file) {
  const std::string path = canonical_string(file);
  for (const auto& p : plugins_)
    if (p.library.string() == path) return p;
  boost::dll::shared_library* lib = nullptr;
  try {
    // rtld_now: a missing symbol fails here, not mid-run. rtld_local: plugins do not see each other's symbols.
    lib = new boost::dll::shared_library(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginError(fmt::format("{}: cannot load plugin library: {}", path, e.what()));
  }
  open_libraries().push_back(lib);
  if (!lib->has(kManifestSymbol))
    throw PluginError(fmt::format("{}: not a daug plugin: it exports no '{}' symbol (register the plugin with "
                                  "DAUG_REGISTER_PLUGIN in exactly one .cpp)", path, kManifestSymbol));
  auto& get = lib->get<const PluginManifest*()>(kManifestSymbol);
  const PluginManifest* m = get();
  if (!m) throw PluginError(fmt::format("{}: daug_plugin_manifest() returned null", path));
  if (m->abi_version != DAUG_SDK_ABI_VERSION)
    throw PluginError(fmt::format("{}: plugin was built against daug SDK ABI version {}, but this daug expects ABI "
                                  "version {}; rebuild the plugin against this SDK", path, m->abi_version,
                                  DAUG_SDK_ABI_VERSION));
  if (m->manifest_size != sizeof(PluginManifest))
    throw PluginError(fmt::format("{}: plugin manifest has size {} bytes, but this daug expects {}; rebuild the plugin "
                                  "against this SDK", path, m->manifest_size, sizeof(PluginManifest)));
  if (std::string(m->torch_version) != TORCH_VERSION)
    throw PluginError(fmt::format("{}: plugin was built against LibTorch {}, but this daug uses LibTorch {}; rebuild "
                                  "the plugin", path, m->torch_version, TORCH_VERSION));
  if (m->cxx11_abi != _GLIBCXX_USE_CXX11_ABI)
    throw PluginError(fmt::format("{}: plugin was built with _GLIBCXX_USE_CXX11_ABI={}, but this daug uses {}", path,
                                  m->cxx11_abi, _GLIBCXX_USE_CXX11_ABI));
  for (const auto& p : plugins_)
    if (p.name == m->name && p.interface == m->interface)
      throw PluginError(fmt::format("duplicate {} plugin name '{}': defined by {} and by {}; remove or rename one "
                                    "(check DAUG_PLUGIN_PATH and --plugin-path)", m->interface, m->name,
                                    p.library.string(), path));
  plugins_.push_back(PluginInfo{m->interface, m->name, m->summary ? m->summary : "", path, m, file_hash(path)});
  return plugins_.back();
}

void PluginLoader::load_all() {
  if (scanned_) return;
  scanned_ = true;
  std::vector<std::string> seen_dirs;
  for (const auto& dir : paths_) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) continue;
    std::string cdir = canonical_string(dir);
    if (std::find(seen_dirs.begin(), seen_dirs.end(), cdir) != seen_dirs.end()) continue;
    seen_dirs.push_back(cdir);
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const auto name = e.path().filename().string();
      // Plugins are libdaug-plugin-<name>.so; the project's own libraries (libdaug_sdk.so, ...) never match.
      if (e.is_regular_file() && name.rfind("libdaug-plugin-", 0) == 0 && e.path().extension() == ".so")
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) load_library(f);
  }
}

const PluginInfo& PluginLoader::find(const std::string& interface, const std::string& name,
                                     const std::string& where) const {
  std::vector<std::string> available;
  for (const auto& p : plugins_) {
    if (p.interface != interface) continue;
    if (p.name == name) return p;
    available.push_back(p.name);
  }
  std::sort(available.begin(), available.end());
  std::string other;
  for (const auto& p : plugins_)
    if (p.name == name)
      other = fmt::format(" ('{}' exists, but it is a {} plugin, from {})", name, p.interface, p.library.string());
  std::string hint = closest_match(name, available);
  std::vector<std::string> dirs;
  for (const auto& d : paths_) dirs.push_back(d.string());
  throw ConfigError(fmt::format("{}: no {} plugin named '{}'{}. Available: {}.{} Searched: {}. Run 'daug plugins list' "
                                "to see all.", where, interface, name, other,
                                available.empty() ? "(none)" : fmt::format("{}", fmt::join(available, ", ")),
                                hint.empty() ? "" : fmt::format(" Did you mean '{}'?", hint), fmt::join(dirs, ":")));
}

const PluginInfo& PluginLoader::find_any(const std::string& name) const {
  std::vector<std::string> all;
  for (const auto& p : plugins_) {
    if (p.name == name) return p;
    all.push_back(p.name);
  }
  std::sort(all.begin(), all.end());
  std::string hint = closest_match(name, all);
  throw ConfigError(fmt::format("no plugin named '{}'. Available: {}.{}", name, fmt::join(all, ", "),
                                hint.empty() ? "" : fmt::format(" Did you mean '{}'?", hint)));
}

std::vector<PluginInfo> PluginLoader::list() const {
  std::vector<PluginInfo> out(plugins_.begin(), plugins_.end());
  std::sort(out.begin(), out.end(), [](const PluginInfo& a, const PluginInfo& b) {
    return std::tie(a.interface, a.name) < std::tie(b.interface, b.name);
  });
  return out;
}

}  // namespace daug::core
