#pragma once
/// `daug query --index DIR (--text "..." | --image x.png | --image-dicom x.dcm | --id ID) [--k 10] [--json]
/// [--html out.html]`: the top-K images of a retrieval index for a report text or an image, and for an image the
/// 14 class scores.
#include <daug/command.h>
#include <daug/options.h>

#include <memory>
#include <string>
#include <vector>

namespace daug::plugins {

struct QueryCommandOptions {
  void visit(OptionVisitor&) {}
};

class QueryCommand final : public Command {
 public:
  using Options = QueryCommandOptions;
  static std::shared_ptr<Command> create(Options, BuildContext&) { return std::make_shared<QueryCommand>(); }
  std::string describe() const override { return "query"; }
  int run(const std::vector<std::string>& args, CommandContext& ctx) override;
};

}  // namespace daug::plugins
