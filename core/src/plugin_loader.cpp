// Plugin discovery and loading with Boost.DLL; ABI handshake; registry by (interface, name).
#include <daug/core/plugin_loader.h>
#include <daug/error.h>

#include <ATen/Version.h>
#include <boost/dll/shared_library.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>

#include <dlfcn.h>
#include <elf.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <regex>

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

#if defined(__x86_64__)
constexpr uint16_t kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kHostMachine = EM_AARCH64;
#else
constexpr uint16_t kHostMachine = EM_NONE;  // not checked
#endif

/// Checks that `path` is a whole ELF shared object for this machine before dlopen() maps it: a truncated library
/// maps pages past the end of the file, and the first touch of one kills the process with SIGBUS and no message.
void validate_elf(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw PluginError(fmt::format("{}: cannot open the plugin library for reading", path));
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  Elf64_Ehdr eh{};
  const uint64_t want = sizeof(Elf64_Ehdr);
  in.read(reinterpret_cast<char*>(&eh), static_cast<std::streamsize>(std::min<uint64_t>(size, want)));
  auto bad = [&](const std::string& what) {
    return PluginError(
        fmt::format("{}: not a loadable plugin library: {} ({} bytes; truncated or not a shared "
                    "library? rebuild or remove it)",
                    path, what, size));
  };
  if (size < 4 || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    std::string head;
    for (uint64_t i = 0; i < std::min<uint64_t>(size, 8); ++i)
      head += fmt::format("{}{:02x}", i ? " " : "", static_cast<unsigned char>(eh.e_ident[i]));
    throw bad(fmt::format("expected the ELF signature 7f 45 4c 46, but the file starts with '{}'", head));
  }
  if (eh.e_ident[EI_CLASS] != ELFCLASS64)
    throw bad(fmt::format("expected a 64-bit ELF file (class {}), but found class {}", ELFCLASS64,
                          static_cast<int>(eh.e_ident[EI_CLASS])));
  if (size < want) throw bad(fmt::format("the ELF header needs {} bytes, but the file ends at byte {}", want, size));
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) throw bad("expected a little-endian ELF file");
  if (eh.e_type != ET_DYN)
    throw bad(fmt::format("expected a shared object (ELF type {}), but found type {}", ET_DYN, eh.e_type));
  if (kHostMachine != EM_NONE && eh.e_machine != kHostMachine)
    throw bad(fmt::format("built for ELF machine {}, but this daug runs on machine {}", eh.e_machine, kHostMachine));
  auto table_end = [&](uint64_t off, uint64_t count, uint64_t entsize, const char* what, uint64_t min_entsize) {
    if (count == 0) return;
    if (entsize < min_entsize)
      throw bad(fmt::format("the {} has entries of {} bytes, expected at least {}", what, entsize, min_entsize));
    const uint64_t end = off + count * entsize;  // count <= 65535 and entsize <= 65535: no overflow for off < 2^63
    if (off > size || end > size)
      throw bad(fmt::format("the {} ({} entries at byte {}) ends at byte {}, past the end of the file", what, count,
                            off, end));
  };
  table_end(eh.e_phoff, eh.e_phnum, eh.e_phentsize, "program header table", sizeof(Elf64_Phdr));
  table_end(eh.e_shoff, eh.e_shnum, eh.e_shentsize, "section header table", sizeof(Elf64_Shdr));
  // Every segment dlopen maps must lie inside the file.
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    in.seekg(static_cast<std::streamoff>(eh.e_phoff + uint64_t{i} * eh.e_phentsize));
    in.read(reinterpret_cast<char*>(&ph), sizeof(ph));
    if (!in) throw bad(fmt::format("cannot read program header {}", i));
    if (ph.p_type == PT_LOAD && (ph.p_offset > size || ph.p_filesz > size - ph.p_offset))
      throw bad(fmt::format("loadable segment {} covers bytes {}..{}, past the end of the file", i, ph.p_offset,
                            ph.p_offset + ph.p_filesz));
  }
}

/// The plugins built with this libdaug_core: build/plugins when it runs from the build tree, and
/// <prefix>/lib/daug/plugins when it is installed, wherever that prefix is now (found from this library's own path,
/// so `cmake --install --prefix DIR` works, not only the configure-time prefix).
std::filesystem::path own_plugin_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_plugin_dir), &info) != 0 && info.dli_fname != nullptr) {
    const std::filesystem::path dir = std::filesystem::path(canonical_string(info.dli_fname)).parent_path();
    if (dir == canonical_string(DAUG_BUILD_CORE_DIR)) return DAUG_BUILD_PLUGIN_DIR;
    return dir / DAUG_PLUGIN_DIR_FROM_LIBDIR;
  }
  return DAUG_INSTALL_PLUGIN_DIR;
}

}  // namespace

LibTorchBuild parse_torch_config(const std::string& show_config) {
  LibTorchBuild b;
  // Only the "Build settings:" line: "KEY=value, KEY=value, ..." (CXX_FLAGS holds spaces, never ", ").
  const size_t at = show_config.find("Build settings:");
  const std::string settings = at == std::string::npos ? std::string() : show_config.substr(at);
  std::smatch m;
  if (std::regex_search(settings, m, std::regex(R"((?:^|[ ,:])TORCH_VERSION=([^,\s]+))"))) b.version = m[1].str();
  if (std::regex_search(settings, m, std::regex(R"((?:^|[ ,:])USE_CUDA=([^,\s]+))"))) {
    const std::string v = m[1].str();
    b.cuda = v == "ON" || v == "1" || v == "TRUE" || v == "True" || v == "true";
  }
  if (std::regex_search(settings, m, std::regex(R"(-D_GLIBCXX_USE_CXX11_ABI=([0-9]+))")))
    b.cxx11_abi = std::stoi(m[1].str());
  return b;
}

std::string libtorch_mismatch(const LibTorchBuild& loaded, const std::string& built_version, bool built_cuda,
                              int built_abi) {
  auto describe = [](const std::string& v, bool cuda) { return fmt::format("{} ({})", v, cuda ? "CUDA" : "CPU-only"); };
  std::vector<std::string> diffs;
  if (!loaded.version.empty() && loaded.version != built_version)
    diffs.push_back(fmt::format("version {} instead of {}", loaded.version, built_version));
  if (!loaded.version.empty() && loaded.cuda != built_cuda)
    diffs.push_back(loaded.cuda ? "a CUDA build instead of a CPU-only one" : "a CPU-only build instead of a CUDA one");
  if (loaded.cxx11_abi >= 0 && loaded.cxx11_abi != built_abi)
    diffs.push_back(fmt::format("_GLIBCXX_USE_CXX11_ABI={} instead of {}", loaded.cxx11_abi, built_abi));
  if (diffs.empty()) return {};
  return fmt::format(
      "the LibTorch loaded at run time is not the one daug and its plugins were built against: built for LibTorch "
      "{}, but the loaded library (at::show_config()) is {}{}: {}. Rebuild daug against the LibTorch you run with "
      "(for a pip torch: -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')), "
      "or make LD_LIBRARY_PATH/RPATH point at the one it was built with",
      describe(built_version, built_cuda), loaded.version.empty() ? "(unknown version)" : loaded.version,
      loaded.version.empty() ? "" : loaded.cuda ? " (CUDA)" : " (CPU-only)", fmt::join(diffs, "; "));
}

LibTorchBuild built_libtorch() { return LibTorchBuild{TORCH_VERSION, DAUG_TORCH_CUDA != 0, _GLIBCXX_USE_CXX11_ABI}; }

void check_loaded_libtorch() {
  static std::once_flag once;
  static std::string problem;
  std::call_once(once, [] {
    const LibTorchBuild b = built_libtorch();
    problem = libtorch_mismatch(parse_torch_config(at::show_config()), b.version, b.cuda, b.cxx11_abi);
  });
  if (!problem.empty()) throw PluginError(problem);
}

PluginLoader::PluginLoader(std::vector<std::filesystem::path> extra) : paths_(std::move(extra)) {
  for (size_t i = 0; i < paths_.size(); ++i) origins_.emplace_back("--plugin-path");
  if (const char* env = std::getenv("DAUG_PLUGIN_PATH")) {
    std::string s = env;
    size_t start = 0;
    while (start <= s.size()) {
      size_t p = s.find(':', start);
      std::string part = s.substr(start, p == std::string::npos ? std::string::npos : p - start);
      if (!part.empty()) {
        paths_.emplace_back(part);
        origins_.emplace_back("DAUG_PLUGIN_PATH");
      }
      if (p == std::string::npos) break;
      start = p + 1;
    }
  }
  paths_.push_back(own_plugin_dir());
  origins_.emplace_back();  // optional: a build without plugins has none
}

const PluginInfo& PluginLoader::load_library(const std::filesystem::path& file) {
  check_loaded_libtorch();  // before any plugin's static initialisers run against a foreign LibTorch
  const std::string path = canonical_string(file);
  for (const auto& p : plugins_)
    if (p.library.string() == path) return p;
  validate_elf(path);
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
  check_loaded_libtorch();
  scanned_ = true;
  std::vector<std::string> seen_dirs;
  for (size_t i = 0; i < paths_.size(); ++i) {
    const auto& dir = paths_[i];
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      // A directory the user named must exist: a typo would otherwise silently run without its plugins.
      if (origins_[i].empty()) continue;
      throw ConfigError(
          fmt::format("{} {}: {}", origins_[i], dir.string(),
                      std::filesystem::exists(dir, ec) ? "is not a directory" : "no such plugin directory"));
    }
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
