#pragma once
/// Stage `train_diffusion`: trains the class-conditional diffusion Generator on the training split with its
/// own training_loss (ε-MSE + L_vb for learned Σ), the class label being the No-Finding indicator (1 = healthy,
/// REFERENCE §11.10), AdamW, optional LR annealing and an EMA of the weights (guided-diffusion: 0.9999). The EMA
/// weights (ema.safetensors) are what the heatmaps stage loads by default.
#include <daug/generator.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/stage.h>
#include <daug/stages/common.h>

#include <cstdint>
#include <string>

namespace daug::plugins {

struct TrainDiffusionOptions {
  std::string generator = "generator";
  std::string data = "data";
  std::string train_split = "train";
  std::string label_source = "superclass";
  std::string label_class = "No Finding";
  int64_t batch_size = 16;
  int64_t epochs = 0;
  int64_t steps = 10000;
  double lr = 1e-4;
  double weight_decay = 0.0;
  bool anneal_lr = false;
  double ema_rate = 0.9999;
  int64_t checkpoint_every = 1000;
  bool resume = true;
  int64_t seed = -1;
  double log_every_s = 10.0;
  data::Filter resize_filter = data::Filter::bilinear;
  stages::Normalize normalize = stages::Normalize::minmax;
  bool cache_images = true;
  train::LoaderOptions loader;  ///< loader_workers, prefetch
  std::string precision;  ///< "" = [run].precision; create() stores the resolved name
  int64_t accumulate = 1;

  void visit(OptionVisitor& v);
};

class TrainDiffusionStage final : public Stage {
 public:
  using Options = TrainDiffusionOptions;
  TrainDiffusionStage(Options opts, std::shared_ptr<Source> data, std::shared_ptr<Generator> generator);
  /// Requests [data] and [generator] (as a model: its sampling options do not retrain it).
  static std::shared_ptr<Stage> create(Options opts, BuildContext& ctx);

  std::string describe() const override;
  std::vector<Artifact> outputs() const override;
  void run(StageContext& ctx) override;

  /// The UNet class label of one sample under the options: 1/0 indicator of label_class, or -1 for "none".
  static int64_t label_of(const Sample& s, const Options& o, const SuperClassGrouping& g);

 private:
  Options opts_;
  std::shared_ptr<Source> data_;
  std::shared_ptr<Generator> gen_;
};

}  // namespace daug::plugins
