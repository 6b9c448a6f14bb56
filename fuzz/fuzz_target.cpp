// Shared support of the fuzz targets: registry, libFuzzer wrapper, scratch files, multi-file inputs.
#include "fuzz_target.h"

#include <daug/error.h>
#include <daug/log.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace daug::fuzz {

namespace {
std::map<std::string, TargetFn>& registry() {
  static std::map<std::string, TargetFn> r;
  return r;
}

void remove_scratch() {
  std::error_code ec;
  std::filesystem::remove_all(scratch_dir(), ec);
}
}  // namespace

bool register_target(const char* name, TargetFn fn) {
  registry()[name] = fn;
  return true;
}

const std::map<std::string, TargetFn>& targets() { return registry(); }

int run_input(const char* name, TargetFn fn, const uint8_t* data, size_t size) {
  // Warnings about rejected or truncated inputs would flood the fuzzer's output and slow it down.
  static const bool quiet = (daug::log::set_level(daug::log::Level::error), true);
  (void)quiet;
  try {
    fn(data, size);
  } catch (const daug::Error&) {
    // A rejected input: the parser said what was wrong. That is the expected outcome for most inputs.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\n==daug-fuzz== FINDING in target '%s': an exception other than daug::Error escaped: %s\n",
                 name, e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "\n==daug-fuzz== FINDING in target '%s': a non-std exception escaped\n", name);
    std::abort();
  }
  return 0;
}

const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("daug-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit(remove_scratch);
    return d;
  }();
  return dir;
}

std::filesystem::path write_scratch(const std::string& name, const void* bytes, size_t size) {
  const auto path = scratch_dir() / name;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
  if (!f) throw std::runtime_error("fuzz support: cannot write " + path.string());
  return path;
}

void clear_scratch() {
  for (const auto& e : std::filesystem::directory_iterator(scratch_dir())) std::filesystem::remove_all(e.path());
}

std::vector<std::string> split_parts(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string sep = "\n%%\n";
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t p = text.find(sep, start);
    if (p == std::string::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, p - start));
    start = p + sep.size();
  }
}

void invariant_failed(const char* target, const char* what, const char* file, int line) {
  throw std::logic_error(std::string("invariant broken in target '") + target + "': " + what + " (" + file + ":" +
                         std::to_string(line) + ")");
}

}  // namespace daug::fuzz
