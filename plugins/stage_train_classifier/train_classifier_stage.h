#pragma once
/// Stage `train_classifier`: trains the noise-aware Classifier on x_t = q_sample(x0, t, ε), t ~ U{0..T−1},
/// with BCE-with-logits and pos_weight = #neg/#pos per super-class (released DAug classifier_train2.py), then
/// reports per-super-class AP on the test split with noisy inputs (paper Table 4 protocol).
#include <daug/classifier.h>
#include <daug/generator.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/stage.h>
#include <daug/stages/common.h>

#include <cstdint>
#include <string>

namespace daug::plugins {

struct TrainClassifierOptions {
  std::string classifier = "classifier";
  std::string generator = "generator";
  std::string data = "data";
  std::string train_split = "train";
  std::string eval_split = "test";
  int64_t batch_size = 48;
  int64_t epochs = 15;
  int64_t steps = 0;
  double lr = 1e-4;
  double weight_decay = 0.0;
  bool anneal_lr = true;
  bool pos_weight = true;
  bool drop_no_positive = true;  ///< leave out images with no positive super-class (released by_pathology)
  std::string anneal = "per_epoch";  ///< with anneal_lr: "per_epoch" (released) or "per_step" (guided-diffusion)
  int64_t max_t = 0;
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
  int64_t eval_batch_size = 32;
  bool eval_clean = true;

  void visit(OptionVisitor& v);
};

class TrainClassifierStage final : public Stage {
 public:
  using Options = TrainClassifierOptions;
  TrainClassifierStage(Options opts, std::shared_ptr<Source> data, std::shared_ptr<Generator> generator,
                       std::shared_ptr<Classifier> classifier);
  /// Requests [data], [generator] (its model: noise schedule and image shape; sampling options do not retrain)
  /// and [classifier], and checks the classifier's outputs are the Source's super-classes.
  static std::shared_ptr<Stage> create(Options opts, BuildContext& ctx);

  std::string describe() const override;
  std::vector<Artifact> outputs() const override;
  void run(StageContext& ctx) override;

  const Options& options() const { return opts_; }

 private:
  Options opts_;
  std::shared_ptr<Source> data_;
  std::shared_ptr<Generator> gen_;
  std::shared_ptr<Classifier> clf_;
};

}  // namespace daug::plugins
