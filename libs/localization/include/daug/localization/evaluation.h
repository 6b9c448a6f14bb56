#pragma once
// The localisation evaluation `daug evaluate-heatmaps` and the `localize` stage share: box metrics (pointing
// game, IoBB hit rate, chance) per label and overall, pixel metrics against masks (AUROC, best Dice), each beside
// the same metrics of the reference maps (uniform noise, centred Gaussian; pixel_metrics.h) on the same boxes and
// masks, with bootstrap 95% CIs of the hit rates; rendered as Markdown, CSV and JSON, a metrics.json and a
// paired_items.json. No LibTorch.
#include <daug/localization/heatmap_localization.h>
#include <daug/localization/pixel_metrics.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace daug::loc {

/// The maps every pair is scored with: the heatmap and the two reference maps.
enum MapKind { kHeatmap = 0, kUniformNoise = 1, kCentredGaussian = 2, kMapKinds = 3 };
/// JSON/CSV names ("heatmap", "uniform_noise", "centred_gaussian") and table names of the map kinds.
const char* map_key(int kind);
const char* map_title(int kind);


struct EvaluationOptions {
  double threshold = 0.5;  ///< on the min-max heatmap, for the IoBB detection
  double iobb = 0.1;       ///< IoBB hit = IoBB > this
  int64_t draws = 1000;    ///< bootstrap draws of the hit-rate CIs
  uint64_t seed = 0;       ///< bootstrap seed; also the noise reference map's seed (mixed with the image id)
};

/// What each evaluation's files say above and below the tables.
struct EvaluationText {
  std::string title = "### Heatmap localisation";
  std::string source;              ///< e.g. "Heatmaps `dir/index.csv` vs boxes `boxes.csv`"
  std::vector<std::string> notes;  ///< extra paragraphs (skipped pairs, ...)
};

/// Rendered results.
struct EvaluationFiles {
  std::string md, csv, json;  ///< localization.md/.csv/.json
  std::string metrics;        ///< metrics.json: {"localization": {<label>: {...}, "pixel": {...}}}, numbers only
  std::string paired_items;   ///< paired_items.json: per "<id>|<label>" hit (0/1) of the heatmap, kind "mean"
};

class Evaluation {
 public:
  explicit Evaluation(EvaluationOptions options);

  /// Scores the pair (id, label) with boxes in an s×s box image: the heatmap and the reference maps at its
  /// resolution. Returns the heatmap's result.
  Result add_boxes(const std::string& id, const std::string& label, const std::vector<Box>& boxes, double s,
                   const Map& heat);
  /// Scores image `id`'s heatmap against its mask on the heatmap grid (mask_to_grid) at pixel level.
  void add_mask(const std::string& id, const Map& heat, const std::vector<uint8_t>& truth);

  int64_t pairs() const { return static_cast<int64_t>(pairs_.size()); }
  int64_t masked_images() const { return static_cast<int64_t>(pixel_[0].dice.size()); }

  /// Tables per label in `label_order` (labels without a scored pair are left out), then Overall. `info` is
  /// stored as localization.json's "_info".
  EvaluationFiles render(const std::vector<std::string>& label_order, const EvaluationText& text,
                         const std::map<std::string, double>& info = {}) const;

 private:
  struct Pair {
    std::string id, label;
    Result r[kMapKinds];
  };
  struct Pixel {
    std::vector<float> scores;  ///< every pixel of every masked image (pooled AUROC)
    std::vector<uint8_t> truth;
    std::vector<double> auroc;              ///< per image, NaN when the mask has one class only
    std::vector<std::vector<double>> dice;  ///< per image: dice_curve
  };
  EvaluationOptions opts_;
  std::vector<Pair> pairs_;
  Pixel pixel_[kMapKinds];
};

/// One image's reference-noise seed: the evaluation seed mixed with the id (the same map for every label).
uint64_t noise_seed(uint64_t seed, const std::string& id);

}  // namespace daug::loc
