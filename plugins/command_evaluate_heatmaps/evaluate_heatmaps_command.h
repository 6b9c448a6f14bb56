#pragma once
// command_evaluate_heatmaps: `daug evaluate-heatmaps`, how well heatmaps localise ground-truth boxes (a Command
// plugin; see README.md).
#include <daug/build_context.h>
#include <daug/command.h>
#include <daug/options.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace daug::plugins {

/// A command takes its input from the command line: no TOML options.
struct EvaluateHeatmapsCommandOptions {
  void visit(daug::OptionVisitor&) {}
};

class EvaluateHeatmapsCommand final : public daug::Command {
 public:
  using Options = EvaluateHeatmapsCommandOptions;
  static std::shared_ptr<daug::Command> create(Options, daug::BuildContext&) {
    return std::make_shared<EvaluateHeatmapsCommand>();
  }
  std::string describe() const override { return "evaluate-heatmaps"; }
  int run(const std::vector<std::string>& args, daug::CommandContext& ctx) override;
};

/// Where each image id's heatmap file is. The heatmaps stage publishes DIR/index.csv (columns id,split,file, and
/// target,direction since the index became a declared artifact); its `file` column (relative to DIR, or absolute)
/// is the only source of file names. `--suffix` reads DIR/<id><suffix> instead, for directories without an index
/// (e.g. the authors' own heatmaps).
class HeatmapFiles {
 public:
  /// Reads DIR/index.csv; `target` / `direction` (empty = any) select rows when one id has several. Throws
  /// DataError if the index is missing, lacks id/file, or leaves an id ambiguous; ConfigError if a filter names a
  /// column the index does not have.
  static HeatmapFiles from_index(const std::filesystem::path& dir, const std::string& target,
                                 const std::string& direction);
  static HeatmapFiles from_suffix(const std::filesystem::path& dir, const std::string& suffix);

  /// The heatmap file of `id`; empty if the index has no row for it (the file itself may still be missing).
  std::filesystem::path find(const std::string& id) const;
  /// For reports and messages: "`DIR/index.csv`" or "`DIR/<id>SUFFIX`".
  const std::string& describe() const { return describe_; }

 private:
  std::filesystem::path dir_;
  std::string suffix_;                           // suffix mode when index_ is empty
  std::vector<std::pair<std::string, std::string>> index_;  // (id, file), sorted by id
  bool indexed_ = false;
  std::string describe_;
};

}  // namespace daug::plugins
