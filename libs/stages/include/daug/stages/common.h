#pragma once
/// Code shared by the stage_* plugins (train_classifier, train_diffusion, heatmaps): image preparation as the
/// released DAug diffusion code does it and the metrics/helpers the stages report with. The training loop,
/// optimizer, EMA, progress line and seed mixing live in libs/train (daug/train/*.h).
///
/// Light header: SDK headers and <ATen/core/Tensor.h> only. Not a plugin; linked statically into each stage.
#include <daug/data/dataset.h>
#include <daug/data/image.h>
#include <daug/options.h>
#include <daug/precision.h>
#include <daug/seed.h>
#include <daug/source.h>
#include <daug/tensor.h>
#include <daug/train/prefetcher.h>
#include <daug/train/progress.h>
#include <daug/train/trainer.h>
#include <daug/trainable.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace daug::stages {

// ------------------------------------------------------------------------------------------------ images

/// Value normalisation of a prepared image (the `normalize` option).
enum class Normalize {
  minmax,      ///< "minmax": per-image min-max to [0,1] after resizing (released DAug/Wolleb code, mimic.py:90-93)
  minmax_pm1,  ///< "minmax_pm1": per-image min-max to [-1,1] (the usual ADM data range)
  none,        ///< "none": the decoder's [0,1] values as they are
};

/// TOML names of the `resize_filter` option: bilinear, bicubic, area, nearest (daug::data::Filter).
extern const Choices<data::Filter> kResizeFilters;
/// TOML names of the `normalize` option: minmax, minmax_pm1, none.
extern const Choices<Normalize> kNormalizations;

/// How a stage turns an image file into a model input.
struct ImagePrep {
  std::vector<int64_t> shape;                ///< {C,H,W} (the Generator's image_shape()); gray is replicated to C
  data::Filter filter = data::Filter::bilinear;  ///< resize filter (PIL antialiased bilinear, as released)
  Normalize normalize = Normalize::minmax;   ///< value normalisation
};

/// Resizes a decoded gray image [1,h,w] (values in [0,1]) to prep.shape and normalises it → [C,H,W] float32.
at::Tensor prepare_image(const at::Tensor& gray, const ImagePrep& prep);
/// daug::data::load_gray(sample.image) followed by prepare_image. Throws DataError naming the file. An image
/// smaller than prep.shape is noted in `small` (see data::SmallImages; null = the process-wide one).
at::Tensor load_image(const Sample& sample, const ImagePrep& prep, data::SmallImages* small = nullptr);

/// Loads batches of prepared images, optionally keeping every prepared image in memory (cheap at 64²,
/// 1 MiB/image at 512²: turn it off for large data sets).
class ImageBatcher {
 public:
  ImageBatcher(std::vector<const Sample*> items, ImagePrep prep, bool cache);
  size_t size() const { return items_.size(); }
  const Sample& sample(int64_t i) const { return *items_.at(static_cast<size_t>(i)); }
  const std::vector<const Sample*>& items() const { return items_; }
  const ImagePrep& prep() const { return prep_; }
  /// [B,C,H,W] float32 on `device` for the given item indices.
  at::Tensor batch(const std::vector<int64_t>& indices, const c10::Device& device);
  /// The prepared image of item i, [C,H,W] float32 on the CPU (the cached one with cache = true). Thread-safe: a
  /// train::Prefetcher calls it from its workers (train::StepLoader over `item` as the item function).
  at::Tensor image(int64_t i);
  /// `image` as a loader item function ({image(i)}); the batcher must outlive its users.
  std::function<std::vector<at::Tensor>(int64_t)> item();

 private:
  std::vector<const Sample*> items_;
  ImagePrep prep_;
  bool cache_;
  std::vector<at::Tensor> cached_;
  std::shared_ptr<std::mutex> cache_mu_ = std::make_shared<std::mutex>();  ///< guards cached_ (loads run unlocked)
  std::shared_ptr<data::SmallImages> small_;  ///< reports its count when the last copy of the batcher goes
};

// ------------------------------------------------------------------------------------------------ progress, seeds

// Moved to libs/train (daug/train/progress.h, daug/train/seed.h); the stages keep using them under these names.
using train::format_duration;
using daug::mix_seed;
using train::Progress;

// ------------------------------------------------------------------------------------------------ training

/// The Trainer options train_classifier and train_diffusion share (guided-diffusion style): AdamW with `lr` and
/// `weight_decay`, lr annealed linearly per step if `anneal_lr`, the torch RNG reseeded from (seed, step) before every
/// step, the `mix` shuffle, drop_last. `StageOptions` has the fields batch_size, epochs, steps, lr, weight_decay,
/// anneal_lr, checkpoint_every, resume and log_every_s; the stage adds the rest (EMA).
template <class StageOptions>
train::TrainerOptions guided_trainer_options(const StageOptions& o, std::string what, int64_t dataset_size,
                                             uint64_t seed, std::filesystem::path checkpoint,
                                             std::filesystem::path losses) {
  train::TrainerOptions t;
  t.what = std::move(what);
  t.dataset_size = dataset_size;
  t.batch_size = o.batch_size;
  t.epochs = o.epochs;
  t.steps = o.steps;
  t.lr = o.lr;
  t.adamw.weight_decay = o.weight_decay;
  t.schedule.kind = o.anneal_lr ? train::Schedule::linear_per_step : train::Schedule::constant;
  t.checkpoint_every = o.checkpoint_every;
  t.resume = o.resume;
  t.seed = seed;
  t.seed_policy = train::SeedPolicy::mix;
  t.reseed_each_step = true;
  t.log_every_s = o.log_every_s;
  t.checkpoint_path = std::move(checkpoint);
  t.losses_path = std::move(losses);
  return t;
}

/// Doc strings of the stage options `precision` and `accumulate` (train_diffusion, train_classifier, train_clip,
/// heatmaps), and the choices of `precision`.
inline constexpr const char* kPrecisionDoc =
    "fp32 | bf16 | fp16 for this stage's forward passes (autocast; float32 master weights, GroupNorm, softmax and "
    "the diffusion arithmetic); \"\" = [run].precision";
inline constexpr const char* kAccumulateDoc =
    "micro-batches per optimizer step (gradient accumulation): batch_size / accumulate images per forward (per "
    "rank: batch_size / ranks / accumulate), the same optimizer step and the same t and noise per image";
Check precision_choice();

/// A stage's `precision` option as create() left it (resolved with daug::stage_precision(); "" = fp32, as in a
/// stage built directly by a test).
Precision resolved_precision(const std::string& option);

/// ConfigError at `where` unless accumulate divides batch_size (micro-batches of equal size, the same batch). Under
/// a distributed launch of W ranks (batch_size is the global batch) also unless batch_size >= W (at `where_batch`)
/// and accumulate <= batch_size / W (every rank has at least one item per micro-batch).
void check_accumulate(int64_t batch_size, int64_t accumulate, const std::string& where,
                      const std::string& where_batch = "batch_size");

/// A stage's final writes (weights, summary, metrics) under a distributed launch: runs `write` on rank 0 only (the
/// ranks hold identical results), then every rank waits for the others, so that none starts a stage reading these
/// files before they exist. In a single process it just runs `write`.
void write_on_main_rank(const std::string& stage, const std::function<void()>& write);

/// Sets TrainerOptions::precision, device and accumulate from the stage options.
void set_precision_options(train::TrainerOptions& t, const std::string& precision, const std::string& device,
                           int64_t accumulate);

// ------------------------------------------------------------------------------------------------ metrics

/// #neg/#pos per column of a 0/1 label matrix (rows = items), the released classifier's pos_weight
/// (datasets/mimic.py get_pos_weights). A column without positives gets 1.0: it never multiplies anything,
/// because pos_weight only scales positive targets. `positives` (optional) receives the counts.
std::vector<double> pos_weights(const std::vector<std::vector<float>>& labels, std::vector<int64_t>* positives = nullptr);

/// Average precision as sklearn.metrics.average_precision_score: Σₙ (Rₙ − Rₙ₋₁)·Pₙ over distinct score
/// thresholds (tied scores form one threshold). NaN when there is no positive label.
double average_precision(const std::vector<double>& scores, const std::vector<float>& labels);

// ------------------------------------------------------------------------------------------------ heatmaps

/// Indices i of [0, n) with i % count == index (--shard index/count).
std::vector<int64_t> shard_indices(int64_t n, int index, int count);

/// matplotlib's 'hot' colormap of x [H,W] (clamped to [0,1]) → [3,H,W] float in [0,1].
at::Tensor hot_colormap(const at::Tensor& x);

/// Overlay panel [3,H,3W]: input | translated | hot(heatmap). Images are [C,H,W] (channel 0 shown, min-max
/// scaled); heat is [H,W] in [0,1].
at::Tensor overlay_panel(const at::Tensor& input, const at::Tensor& translated, const at::Tensor& heat);

/// "<id>_<+|-><tag>.npy", the authors' naming (e.g. "abc_+nof.npy").
std::string heatmap_file_name(const std::string& id, int direction, const std::string& tag);

}  // namespace daug::stages

namespace daug::stages {

// ------------------------------------------------------------------------------------------------ small I/O

/// JSON string literal (quotes and escapes) for the hand-written result files.
std::string json_string(const std::string& s);
/// A JSON number, or null for NaN/inf.
std::string json_number(double v);
/// Contents of a text file, or "" if it does not exist.
std::string read_text_if_exists(const std::filesystem::path& path);
/// The stage's `seed` option resolved: >= 0 as given, -1 → the run seed.
uint64_t resolve_seed(int64_t option, uint64_t run_seed);

}  // namespace daug::stages
