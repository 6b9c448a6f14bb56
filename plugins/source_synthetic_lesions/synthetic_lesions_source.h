#pragma once
/// `synthetic_lesions` Source: wraps another Source and draws parametric lesions with known masks (a nodule, a
/// consolidation-like patch, an effusion at a costophrenic angle) into a chosen fraction of its images,
/// deterministically from a seed. The lesion becomes the image's label (the rest are "No Finding" for this task),
/// and the source carries the masks and boxes (daug::LocalizationTruth), so that heatmaps can be scored against
/// ground truth on real radiograph backgrounds.
#include "lesions.h"

#include <daug/localization_truth.h>
#include <daug/options.h>
#include <daug/sources/list_source.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace daug {
class BuildContext;
}

namespace daug::plugins {

struct SyntheticLesionsOptions {
  std::string source;                                                ///< table of the wrapped Source
  std::string split = "all";  ///< keep only these splits of the wrapped source ("test", "train+val", "all")
  double fraction = 0.5;                                             ///< share of images that get a lesion
  std::vector<std::string> kinds = {"nodule", "consolidation", "effusion"};
  std::vector<double> contrast = {0.15, 0.5};                        ///< [lo, hi] uniform, or [c] fixed
  std::vector<double> nodule_radius = {12, 24};                      ///< px of a 256-px image
  std::vector<double> consolidation_size = {40, 70};
  std::vector<double> effusion_height = {30, 60};
  bool one_class = false;  ///< one super-class "Lesion" for every kind instead of one per kind
  int64_t seed = 0;        ///< which images get which lesion (independent of the run seed)
  std::string out_dir;     ///< where the images/masks go; "" = <[run].cache_dir>/synthetic_lesions-<key>

  void visit(OptionVisitor& v);
};

class SyntheticLesionsSource final : public data::ListSource, public LocalizationTruth {
 public:
  using Options = SyntheticLesionsOptions;
  static std::shared_ptr<Source> create(Options options, BuildContext& ctx);
  SyntheticLesionsSource(Options options, std::shared_ptr<Source> inner, std::filesystem::path cache_root,
                         std::string where);

  std::string describe() const override;
  /// The wrapped source's fingerprint and every option that shapes the lesions (not out_dir): the files are a pure
  /// function of these, so regenerating them does not invalidate cached stages.
  std::string fingerprint() const override;
  const std::vector<TruthBox>& truth_boxes() const override { return boxes_; }
  std::filesystem::path truth_mask(const std::string& id) const override;
  /// The folder holding images/, masks/, boxes.csv and lesions.csv.
  const std::filesystem::path& dir() const { return dir_; }

 private:
  Options opts_;
  std::shared_ptr<Source> inner_;
  std::string fingerprint_;
  std::filesystem::path dir_;
  std::vector<TruthBox> boxes_;
  std::map<std::string, std::filesystem::path> masks_;
  int64_t lesioned_ = 0;
};

}  // namespace daug::plugins
