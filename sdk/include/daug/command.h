#pragma once
/// Command: a `daug <name> ...` sub-command provided by a plugin, so that research tools (`daug embed`,
/// `daug evaluate-heatmaps`) live beside the code they use and the core CLI stays free of domain code. The
/// command's name and one-line summary are those of its manifest (DAUG_REGISTER_PLUGIN); `daug --help` and
/// `daug plugins list` show them, and `daug <name>` runs it when <name> is not a core command.
///
/// Contract:
///  * run() receives the arguments after the command word; the global options (--plugin-path, --log-level) are
///    already applied. `--help` / `-h` prints usage to stdout and returns 0.
///  * Bad input throws daug::ConfigError or daug::DataError ("what must hold, but got X"); the CLI prints it with
///    its prefix and exits 1. The return value is the process exit code otherwise.
///  * A command is built like any plugin, from an empty table [<name>]: its Options normally have no fields (its
///    input comes from the command line), and create() should not ask the BuildContext for components.
///  * To use components, load a config through CommandContext::build(): the command never links the core.
///
/// Example:
///   struct HelloOptions { void visit(daug::OptionVisitor&) {} };
///   class Hello final : public daug::Command {
///    public:
///     using Options = HelloOptions;
///     static std::shared_ptr<daug::Command> create(Options, daug::BuildContext&) { return std::make_shared<Hello>(); }
///     std::string describe() const override { return "hello"; }
///     int run(const std::vector<std::string>& args, daug::CommandContext& ctx) override {
///       daug::BuildContext& build = ctx.build(args.at(0), {}, "out");  // loaded as `daug run` loads a config
///       auto backbone = build.component<daug::Backbone>("backbone");   // built by its plugin, [run] device/seed
///       fmt::print("{}\n", backbone->describe());
///       return 0;
///     }
///   };
///   DAUG_REGISTER_PLUGIN(daug::Command, "hello", Hello, "print the configured backbone")
#include <daug/api.h>
#include <daug/build_context.h>
#include <daug/component.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace daug {

/// What the core lends a running command.
class DAUG_SDK_API CommandContext {
 public:
  virtual ~CommandContext();
  /// Loads `config` as `daug run` does (imports, `overrides` as --set "a.b=value", variable expansion) and returns
  /// a BuildContext over it: `component<T>(table)` builds that table's plugin through the normal plugin loader,
  /// on the config's [run] device with its seed. `run_dir` (created) is what BuildContext::run_dir() returns.
  /// Everything built stays alive until this CommandContext is destroyed; each call returns a new, independent
  /// BuildContext. Throws ConfigError with file:line for a bad config.
  virtual BuildContext& build(const std::filesystem::path& config, const std::vector<std::string>& overrides,
                              const std::filesystem::path& run_dir) = 0;

  /// What run_stages() ran: the run directory (resolved.toml, effective.toml, run.log) and the output directory of
  /// every stage it ran or found finished, keyed by config table. Empty on the ranks > 0 of a distributed launch
  /// except for stage_dirs.
  struct StageRun {
    std::filesystem::path run_dir;
    std::map<std::string, std::filesystem::path> stage_dirs;
  };
  /// Runs `stages` of `config` as `daug run CONFIG --set ... --stage ...` would (run directory, cache, locks,
  /// resume, distributed ranks), except that they need not be listed in [run].stages: every upstream stage they
  /// declare runs first when it is not finished, and config tables none of them uses are allowed. For commands
  /// built on one stage's output (`daug index build`). Throws as `daug run` does.
  virtual StageRun run_stages(const std::filesystem::path& config, const std::vector<std::string>& overrides,
                              const std::vector<std::string>& stages) = 0;
};

class DAUG_SDK_API Command : public Component {
 public:
  static constexpr const char* kInterface = "Command";
  ~Command() override;
  /// Runs the command with the arguments after the command word; returns the exit code (see the contract above).
  virtual int run(const std::vector<std::string>& args, CommandContext& ctx) = 0;
};

}  // namespace daug
