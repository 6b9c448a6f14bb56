// Plugin commands: the core's side of sdk/include/daug/command.h (CommandContext over the loader and Experiment).
#include "plugin_commands.h"

#include <daug/command.h>
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>

#include <algorithm>
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
  }
  CliCommandContext(const CliCommandContext&) = delete;
  CliCommandContext& operator=(const CliCommandContext&) = delete;

  BuildContext& build(const std::filesystem::path& config, const std::vector<std::string>& overrides,
                      const std::filesystem::path& run_dir) override {
    auto doc = core::load_config(config, overrides);
    if (!run_dir.empty()) std::filesystem::create_directories(run_dir);
    experiments_.push_back(std::make_unique<core::Experiment>(loader_, std::move(doc), run_dir));
    return *experiments_.back();
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
