#pragma once
/// Stage `localize`: how well a heatmaps stage's maps localise the ground truth of a Source that has it
/// (daug::LocalizationTruth: boxes, and masks where known). Pointing game and IoBB hit rates per label and overall,
/// pixel AUROC and best Dice against masks, each beside uniform-noise and centred-Gaussian reference maps on the
/// same boxes, with bootstrap 95% CIs (libs/localization); plus overlay PNGs of heatmap, boxes, mask contour and the
/// heatmap's maximum, named by hit or miss.
#include <daug/localization_truth.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/stage.h>

#include <cstdint>
#include <memory>
#include <string>

namespace daug::plugins {

struct LocalizeOptions {
  std::string heatmaps_stage = "heatmaps";  ///< the heatmaps stage table whose heatmaps.index is scored
  std::string data = "data";                ///< Source with LocalizationTruth (the heatmaps stage's images)
  double threshold = 0.5;
  double iobb = 0.1;
  int64_t overlays = 8;
  int64_t overlay_size = 256;
  int64_t bootstrap_draws = 1000;
  int64_t bootstrap_seed = 0;
  void visit(OptionVisitor& v);
};

class LocalizeStage final : public Stage {
 public:
  using Options = LocalizeOptions;
  LocalizeStage(Options opts, std::shared_ptr<Source> data);
  /// ConfigError at `data`'s file:line when the Source has no LocalizationTruth.
  static std::shared_ptr<Stage> create(Options opts, BuildContext& ctx);
  std::string describe() const override;
  std::vector<Artifact> outputs() const override;
  void run(StageContext& ctx) override;

 private:
  Options opts_;
  std::shared_ptr<Source> data_;
  const LocalizationTruth* truth_;
};

/// Artifact names of the localize stage (the report reads them).
namespace localize_artifacts {
inline constexpr const char* kTable = "localization";        ///< localization.md
inline constexpr const char* kPairedItems = "paired_items";  ///< paired_items.json
}  // namespace localize_artifacts

}  // namespace daug::plugins
