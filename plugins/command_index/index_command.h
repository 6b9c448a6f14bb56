#pragma once
/// `daug index build CONFIG ... --out DIR` and `daug index info DIR`: a retrieval index of a Source's images from a
/// trained model (the `index` stage, run with the stages it needs), copied to a self-describing directory.
#include <daug/command.h>
#include <daug/options.h>

#include <memory>
#include <string>
#include <vector>

namespace daug::plugins {

struct IndexCommandOptions {
  void visit(OptionVisitor&) {}
};

class IndexCommand final : public Command {
 public:
  using Options = IndexCommandOptions;
  static std::shared_ptr<Command> create(Options, BuildContext&) { return std::make_shared<IndexCommand>(); }
  std::string describe() const override { return "index"; }
  int run(const std::vector<std::string>& args, CommandContext& ctx) override;
};

}  // namespace daug::plugins
