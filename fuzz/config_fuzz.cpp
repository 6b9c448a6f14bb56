// TOML config loader with imports (core/src/config_loader.cpp). The input is several files separated by lines
// "%%": part 0 is main.toml, part k is k.toml (main.toml may import "1.toml", ...), all in a fresh directory.
// Lines "#set KEY=VALUE" of main.toml (TOML comments) are also applied as --set overrides.
#include "fuzz_target.h"

#include <daug/core/config_loader.h>

#include <sstream>

DAUG_FUZZ_TARGET(config) {
  daug::fuzz::clear_scratch();
  const std::vector<std::string> parts = daug::fuzz::split_parts(data, size);
  for (size_t k = 0; k < parts.size(); ++k)
    daug::fuzz::write_scratch(k == 0 ? "main.toml" : std::to_string(k) + ".toml", parts[k].data(), parts[k].size());
  std::vector<std::string> overrides;
  std::istringstream lines(parts[0]);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("#set ", 0) == 0) overrides.push_back(line.substr(5));
  const auto doc = daug::core::load_config(daug::fuzz::scratch_dir() / "main.toml", overrides);
  // What `daug config resolve` prints, and the copy a sweep makes.
  (void)daug::core::resolved_toml(*doc, true);
  (void)daug::core::clone(*doc);
}
