#pragma once
/// `train_clip` Stage: fine-tunes a CLIP Backbone on (image [+ heatmap channels], report) pairs with a Criterion
/// (`clip` or DAug's `hybrid`), as drjinying/DAug daug/main.py + model.py do (REFERENCE.md §1.3).
#include <daug/backbone.h>
#include <daug/criterion.h>
#include <daug/heatmap_composer.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/stage.h>

#include "clip_data.h"

#include <daug/train/prefetcher.h>

#include <memory>
#include <string>
#include <vector>

namespace daug::plugins {

struct TrainClipOptions {
  std::string data = "data";            ///< Source table
  std::string backbone = "backbone";    ///< Backbone table
  std::string criterion = "criterion";  ///< Criterion table
  std::string composer = "clip_composer";  ///< HeatmapComposer table ("" = plain image, no composer)
  clip::HeatmapOptions heatmaps;
  std::string split = "train+val";
  std::vector<std::string> prompts;     ///< empty = the 14 released prompts (set in the constructor)
  int64_t epochs = 10;
  int64_t batch_size = 32;
  int64_t contrastive_group = 0;        ///< rows per contrastive loss; 0 = the whole batch
  std::string gather = "local";         ///< distributed: "local" = per-rank losses, "global" = over the global batch
  double lr = 2e-5;
  double weight_decay = 0.01;
  std::vector<std::string> no_decay = {"bias"};
  int64_t warmup_steps = 10;
  std::string schedule = "cosine";
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double grad_clip = 0.0;
  int64_t seed = -1;                    ///< -1 = the run's seed
  bool drop_last = true;
  int64_t max_steps = 0;                ///< 0 = epochs × steps per epoch
  int64_t checkpoint_every = 0;         ///< steps; 0 = at the end of every epoch
  bool resume = true;
  int64_t log_every = 10;
  train::LoaderOptions loader;          ///< loader_workers, prefetch
  std::string precision;   ///< "" = [run].precision; create() stores the resolved name
  int64_t accumulate = 1;  ///< micro-batches per step; needs contrastive_group | batch_size/accumulate
  void visit(OptionVisitor& v);
};

class TrainClipStage final : public Stage {
 public:
  using Options = TrainClipOptions;
  TrainClipStage(Options opts, std::shared_ptr<Source> data, std::shared_ptr<Backbone> backbone,
                 std::shared_ptr<Criterion> criterion, std::shared_ptr<HeatmapComposer> composer, std::string device,
                 uint64_t run_seed);
  static std::shared_ptr<Stage> create(Options opts, BuildContext& ctx);

  std::vector<Artifact> outputs() const override;
  void run(StageContext& ctx) override;
  std::string describe() const override;

 private:
  Options opts_;
  // Dependencies (owned by the Experiment; declared in build order).
  std::shared_ptr<Source> data_;
  std::shared_ptr<Backbone> backbone_;
  std::shared_ptr<Criterion> criterion_;
  std::shared_ptr<HeatmapComposer> composer_;
  std::string device_;
  uint64_t seed_;
};

}  // namespace daug::plugins
