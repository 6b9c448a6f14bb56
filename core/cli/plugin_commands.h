#pragma once
// Plugin-provided `daug <name>` commands (daug::Command, sdk/include/daug/command.h): listing for `daug --help`
// and dispatch when <name> is not a core command.
#include <daug/core/plugin_loader.h>

#include <optional>
#include <string>
#include <vector>

namespace daug::cli {

/// (name, summary) of every Command plugin in the search paths, sorted by name. Throws what loading throws.
std::vector<std::pair<std::string, std::string>> plugin_commands(const core::PluginLoader& loader);

/// Runs the Command plugin `name` with `args` if one exists; std::nullopt if no Command plugin has that name.
std::optional<int> run_plugin_command(const core::PluginLoader& loader, const std::string& name,
                                      const std::vector<std::string>& args);

}  // namespace daug::cli
