#pragma once
/// `evaluate` Stage: DAug's evaluation protocol (drjinying/DAug daug/main.py:245-316, REFERENCE.md §1.4):
/// report→image and image→image retrieval mAP@K (queries = test, gallery = train+val) and classification AUC
/// with the class-prompt embeddings as a zero-bias linear head, per class in CheXbert order plus Avg and wAvg.
#include <daug/backbone.h>
#include <daug/heatmap_composer.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/stage.h>

#include "clip_data.h"
#include "clip_metrics.h"

#include <memory>
#include <string>
#include <vector>

namespace daug::plugins {

/// NaN labels: negative (released) or left out of that class's AUC (never relevant in retrieval).
enum class MissingLabels { negative, exclude };

struct EvaluateOptions {
  std::string data = "data";
  std::string backbone = "backbone";
  std::string composer = "clip_composer";
  clip::HeatmapOptions heatmaps;
  std::string train_stage = "train_clip";  ///< stage whose checkpoint.safetensors is evaluated ("" = none)
  std::string checkpoint;                  ///< explicit checkpoint file; wins over train_stage
  std::string gallery_split = "train+val";
  std::string query_split = "test";
  std::vector<int64_t> k = {5};
  clip::ApKind ap = clip::ApKind::released;
  std::vector<std::string> prompts;        ///< [] = from the checkpoint's metadata, else the released prompts
  double class_logit_scale = 4.602;        ///< probs = sigmoid(exp(this)·cos)
  MissingLabels missing_labels = MissingLabels::negative;  ///< TOML "negative" or "exclude"
  int64_t batch_size = 64;
  int64_t examples = 8;                    ///< retrieval examples written for the report
  int64_t bootstrap = 1000;                ///< resamples of the queries for the 95% CI of each Avg (0 = none)
  int64_t bootstrap_seed = 0;              ///< seed of those resamples (daug/bootstrap.h)
  void visit(OptionVisitor& v);
};

class EvaluateStage final : public Stage {
 public:
  using Options = EvaluateOptions;
  EvaluateStage(Options opts, std::shared_ptr<Source> data, std::shared_ptr<Backbone> backbone,
                std::shared_ptr<HeatmapComposer> composer, std::string device);
  static std::shared_ptr<Stage> create(Options opts, BuildContext& ctx);
  std::vector<Artifact> outputs() const override;
  /// The explicit `checkpoint` file, when set (it is read from outside the config).
  std::string fingerprint() const override;
  void run(StageContext& ctx) override;
  std::string summary(const std::filesystem::path& output_dir) const override;
  std::string describe() const override;

 private:
  Options opts_;
  std::shared_ptr<Source> data_;
  std::shared_ptr<Backbone> backbone_;
  std::shared_ptr<HeatmapComposer> composer_;
  std::string device_;
};

}  // namespace daug::plugins
