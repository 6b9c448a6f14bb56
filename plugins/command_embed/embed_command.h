#pragma once
// command_embed: `daug embed`, image and text embeddings of a configured Backbone as .npy files (a Command plugin;
// see README.md). Declared in a header so tests can construct it directly.
#include <daug/build_context.h>
#include <daug/command.h>
#include <daug/options.h>

#include <memory>
#include <string>
#include <vector>

namespace daug::plugins {

/// A command takes its input from the command line: no TOML options.
struct EmbedCommandOptions {
  void visit(daug::OptionVisitor&) {}
};

class EmbedCommand final : public daug::Command {
 public:
  using Options = EmbedCommandOptions;
  static std::shared_ptr<daug::Command> create(Options, daug::BuildContext&) {
    return std::make_shared<EmbedCommand>();
  }
  std::string describe() const override { return "embed"; }
  int run(const std::vector<std::string>& args, daug::CommandContext& ctx) override;
};

}  // namespace daug::plugins
