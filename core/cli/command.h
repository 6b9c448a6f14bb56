#pragma once
// A core `daug` sub-command (domain-free: plugins, config, run, ablate, version). Each cli/*.cpp registers its
// commands with DAUG_CLI_COMMAND; main.cpp dispatches by name, and to a Command plugin (daug/command.h) otherwise. (Static registration is safe here: these files are linked into the executable, not a static library.)
#include <string>
#include <vector>

namespace daug::cli {

struct Command {
  const char* name;     ///< e.g. "run", "plugins", "config"
  const char* summary;  ///< one line for `daug --help`
  /// Runs with the arguments after the command word; returns the exit code. Throws daug::Error on bad input
  /// (main prints it and exits 1).
  int (*run)(const std::vector<std::string>& args);
};

std::vector<Command>& commands();

struct Registrar {
  explicit Registrar(Command c) { commands().push_back(c); }
};

/// Global options every command may read (set by main before dispatch).
struct Globals {
  std::vector<std::string> plugin_paths;  ///< --plugin-path, in addition to DAUG_PLUGIN_PATH and defaults
  std::string log_level;                  ///< --log-level as given ("" = not given); `daug launch` passes it on
};
Globals& globals();

}  // namespace daug::cli

#define DAUG_CLI_CONCAT2(a, b) a##b
#define DAUG_CLI_CONCAT(a, b) DAUG_CLI_CONCAT2(a, b)
#define DAUG_CLI_COMMAND(Name, Summary, Fn) \
  static ::daug::cli::Registrar DAUG_CLI_CONCAT(daug_cli_registrar_, __LINE__)({Name, Summary, Fn})
