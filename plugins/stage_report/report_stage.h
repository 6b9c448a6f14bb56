#pragma once
/// `report` Stage: one self-contained HTML page (images inlined as base64 PNG) with the evaluation tables, the
/// summaries of other stages (e.g. train_classifier's AP table), the training curves (inline SVG) of every stage it
/// reads that declares a `losses` artifact, heatmap overlays (input | translated | heatmap)
/// per heatmap stage, localisation tables with ground-truth overlays per localize stage, and report→image retrieval
/// examples.
#include <daug/options.h>
#include <daug/source.h>
#include <daug/stage.h>

#include <memory>
#include <string>
#include <vector>

namespace daug::plugins {

struct ReportOptions {
  std::string data = "data";                               ///< Source (labels, generated-report flag)
  std::string evaluate_stage = "evaluate";                 ///< tables + retrieval_examples.json
  std::vector<std::string> heatmap_stages = {"heatmaps"};  ///< one overlay section each
  /// Their summary.md is included (and their training curves, when they declare a `losses` artifact).
  std::vector<std::string> extra_stages = {"train_classifier", "train_diffusion", "train_clip"};
  std::vector<std::string> localize_stages;                ///< localisation table + GT-outline overlays each
  int64_t overlays = 6;                                    ///< overlay images per heatmap stage
  int64_t examples = 4;                                    ///< retrieval examples shown
  int64_t thumb_size = 128;                                ///< retrieval thumbnail side (px)
  std::string title = "DAug report";
  void visit(OptionVisitor& v);
};

class ReportStage final : public Stage {
 public:
  using Options = ReportOptions;
  /// `present`: the stage tables that exist in the configuration (create() requests only those).
  ReportStage(Options opts, std::shared_ptr<Source> data, std::vector<std::string> present);
  static std::shared_ptr<Stage> create(Options opts, BuildContext& ctx);
  std::vector<Artifact> outputs() const override;
  void run(StageContext& ctx) override;
  std::string summary(const std::filesystem::path& output_dir) const override;
  std::string describe() const override;

 private:
  Options opts_;
  std::shared_ptr<Source> data_;
  std::vector<std::string> present_;
};

}  // namespace daug::plugins
