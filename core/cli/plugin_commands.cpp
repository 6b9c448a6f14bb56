// Plugin commands: the core's side of sdk/include/daug/command.h (CommandContext over the loader and Experiment).
#include "plugin_commands.h"

#include <daug/command.h>
#include <daug/config_view.h>
#include <daug/core/config_loader.h>
#include <daug/core/pipeline.h>
#include <daug/core/experiment.h>
#include <daug/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>

namespace daug::cli {
namespace {

/// Each build() is an Experiment over a freshly loaded config; all of them live as long as the context and are
/// destroyed newest first (a component built later may hold one built earlier).
class CliCommandContext final : public CommandContext {
 public:
  explicit CliCommandContext(const core::PluginLoader& loader) : loader_(loader) {}
  ~CliCommandContext() override {
    while (!experiments_.empty()) experiments_.pop_back();
    joined_.reset();  // uninstalls the communicator after the components that may use it
  }
  CliCommandContext(const CliCommandContext&) = delete;
  CliCommandContext& operator=(const CliCommandContext&) = delete;

  BuildContext& build(const std::filesystem::path& config, const std::vector<std::string>& overrides,
                      const std::filesystem::path& run_dir) override {
    auto doc = core::load_config(config, overrides);
    join_launch(doc);
    if (!run_dir.empty()) std::filesystem::create_directories(run_dir);
    experiments_.push_back(std::make_unique<core::Experiment>(loader_, std::move(doc), run_dir));
    return *experiments_.back();
  }

  StageRun run_stages(const std::filesystem::path& config, const std::vector<std::string>& overrides,
                      const std::vector<std::string>& stages) override {
    auto doc = core::load_config(config, overrides);
    join_launch(doc);
    core::RunOptions options;
    options.only = stages;
    options.with_upstream = true;
    core::RunResult r = core::run_pipeline(loader_, std::move(doc), overrides, options);
    StageRun out;
    out.run_dir = r.run_dir;
    for (const auto& [table, dir] : r.stage_dirs) out.stage_dirs[table] = dir;
    return out;
  }

  /// Under a distributed launch (`daug launch --nproc N -- <command>`, torchrun, srun) the first config a command
  /// loads joins the ranks with its [run] backend, device and dist_timeout_s (DAUG_DIST_TIMEOUT_S overrides), as
  /// `daug run` does, and the command sees them through daug::communicator() (`daug embed` splits its items).
  void join_launch(const std::shared_ptr<const ConfigDocument>& doc) {
    if (!joined_) joined_ = core::join_distributed(doc);
  }

  /// The command itself, built like any component from a one-table document [<name>] plugin = "<name>".
  std::shared_ptr<Command> make_command(const std::string& name) {
    auto doc = core::parse_config("[\"" + name + "\"]\nplugin = \"" + name + "\"\n", "daug " + name);
    host_ = std::make_unique<core::Experiment>(loader_, std::move(doc), std::filesystem::current_path());
    return host_->component<Command>(name);
  }

 private:
  const core::PluginLoader& loader_;
  std::unique_ptr<core::Experiment> host_;  // owns the command; outlives the experiments it builds
  std::vector<std::unique_ptr<core::Experiment>> experiments_;
  std::shared_ptr<void> joined_;  // the communicator, installed while the command runs under a distributed launch
};

}  // namespace

std::vector<std::pair<std::string, std::string>> plugin_commands(const core::PluginLoader& loader) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : loader.list())
    if (p.interface == Command::kInterface) out.emplace_back(p.name, p.summary);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<int> run_plugin_command(const core::PluginLoader& loader, const std::string& name,
                                      const std::vector<std::string>& args) {
  bool found = false;
  for (const auto& p : loader.list()) found = found || (p.interface == Command::kInterface && p.name == name);
  if (!found) return std::nullopt;
  CliCommandContext ctx(loader);
  std::shared_ptr<Command> cmd = ctx.make_command(name);
  return cmd->run(args, ctx);
}

}  // namespace daug::cli
