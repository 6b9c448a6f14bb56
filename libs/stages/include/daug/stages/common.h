#pragma once
/// Code shared by the stage_* plugins (train_classifier, train_diffusion, heatmaps): image preparation as the
/// released DAug diffusion code does it, a progress line with rate and ETA, AdamW with checkpointable state,
/// EMA, the resumable training loop, and the metrics/helpers the stages report with.
///
/// Light header: SDK headers and <ATen/core/Tensor.h> only. Not a plugin; linked statically into each stage.
#include <daug/data/image.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
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
  data::Filter filter = data::Filter::area;  ///< resize filter
  Normalize normalize = Normalize::minmax;   ///< value normalisation
};

/// Resizes a decoded gray image [1,h,w] (values in [0,1]) to prep.shape and normalises it → [C,H,W] float32.
at::Tensor prepare_image(const at::Tensor& gray, const ImagePrep& prep);
/// daug::data::load_gray(sample.image) followed by prepare_image. Throws DataError naming the file.
at::Tensor load_image(const Sample& sample, const ImagePrep& prep);

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

 private:
  std::vector<const Sample*> items_;
  ImagePrep prep_;
  bool cache_;
  std::vector<at::Tensor> cached_;
};

// ------------------------------------------------------------------------------------------------ progress

/// "1h02m03s", "4m05s", "12.3s".
std::string format_duration(double seconds);

/// Logs "<what>: done/total (p%) <rate>/s ETA <t> <extra>" through daug::log at most every `every_s` seconds
/// (and always when done == total). The rate counts only work done since construction (resumed work excluded).
class Progress {
 public:
  Progress(std::string what, int64_t total, int64_t already_done = 0, double every_s = 10.0,
           std::string unit = "it");
  /// Reports `done` items finished in total; returns true if a line was logged.
  bool update(int64_t done, const std::string& extra = {});
  double elapsed_s() const;
  /// Items per second since construction (0 before any progress).
  double rate() const;
  int64_t done() const { return done_; }

 private:
  std::string what_, unit_;
  int64_t total_, start_done_, done_;
  double every_s_;
  std::chrono::steady_clock::time_point start_, last_log_;
};

// ------------------------------------------------------------------------------------------------ optimisation

struct AdamWOptions {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

/// AdamW with PyTorch's update rule (torch.optim.AdamW, amsgrad=False):
///   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
///   p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps).
/// Its state is plain tensors, so it checkpoints into safetensors next to the model.
class AdamW {
 public:
  AdamW(std::vector<at::Tensor> params, AdamWOptions options);
  /// Drops every parameter's gradient.
  void zero_grad();
  /// One update with learning rate `lr` (parameters without a gradient are skipped, as in PyTorch).
  void step(double lr);
  int64_t steps() const { return step_; }
  /// "adamw.step" (int64 scalar), "adamw.exp_avg.<i>", "adamw.exp_avg_sq.<i>" for parameter i.
  NamedTensors state() const;
  /// Restores state(); a missing key or a shape mismatch throws DataError naming `source`.
  void load_state(const NamedTensors& state, const std::string& source);

 private:
  std::vector<at::Tensor> params_, exp_avg_, exp_avg_sq_;
  AdamWOptions opts_;
  int64_t step_ = 0;
};

/// guided-diffusion's `anneal_lr`: lr = base · (1 − step/total), reaching 0 after the last step.
double annealed_lr(double base, int64_t step, int64_t total);

/// Exponential moving average of parameters (guided-diffusion's update_ema): ema ← rate·ema + (1−rate)·p.
class Ema {
 public:
  Ema(std::vector<at::Tensor> params, double rate);
  void update();
  double rate() const { return rate_; }
  const std::vector<at::Tensor>& shadow() const { return shadow_; }
  /// `model_state` (a Trainable::state()) with every tensor that is one of the parameters replaced by its EMA.
  NamedTensors substitute(const NamedTensors& model_state) const;
  NamedTensors state() const;  ///< "ema.<i>"
  void load_state(const NamedTensors& state, const std::string& source);

 private:
  std::vector<at::Tensor> params_, shadow_;
  double rate_;
};

// ------------------------------------------------------------------------------------------------ training loop

struct TrainLoopOptions {
  std::string what = "train";   ///< progress label
  int64_t dataset_size = 0;     ///< number of training items
  int64_t batch_size = 8;
  int64_t epochs = 1;           ///< used when steps == 0
  int64_t steps = 0;            ///< > 0: exactly this many optimizer steps
  double lr = 1e-4;
  double weight_decay = 0.0;
  bool anneal_lr = false;
  double ema_rate = 0.0;        ///< 0: no EMA
  int64_t checkpoint_every = 0; ///< 0: only at the end
  bool resume = true;
  uint64_t seed = 0;
  double log_every_s = 10.0;
  int64_t stop_after = -1;      ///< testing aid: return after this many steps of this call (-1: run to the end)
};

struct TrainLoopResult {
  int64_t total_steps = 0;
  int64_t resumed_from = 0;     ///< step restored from a checkpoint (0: fresh start)
  int64_t steps_run = 0;        ///< steps executed by this call
  double first_loss = 0.0, last_loss = 0.0;  ///< first/last step losses in losses.csv
  double mean_last_loss = 0.0;  ///< mean loss over the last 10% of steps (at least 1)
  double seconds = 0.0;         ///< wall time of this call's steps
  NamedTensors final_state;     ///< model state at the end
  NamedTensors final_ema;       ///< EMA state at the end (empty without EMA)
};

/// Steps a batch of item indices: returns the scalar, differentiable loss. `step` is 0-based.
using LossFn = std::function<at::Tensor(const std::vector<int64_t>& batch, int64_t step)>;

/// Number of optimizer steps for the options: `steps`, or epochs · max(1, N / batch) (drop_last batches).
int64_t total_steps(const TrainLoopOptions& o);
/// Item indices of step `step`: a permutation per epoch drawn from (seed, epoch), cut into full batches.
std::vector<int64_t> batch_indices(const TrainLoopOptions& o, int64_t step);
/// A 64-bit mix of (seed, salt) (splitmix64), for per-step / per-epoch seeds.
uint64_t mix_seed(uint64_t seed, uint64_t salt);

/// Runs the loop in `dir`: <dir>/checkpoint.safetensors (model + AdamW + EMA + step, written atomically every
/// checkpoint_every steps and at the end), <dir>/losses.csv (step,epoch,loss,lr,elapsed_s; on resume, rows past
/// the checkpoint are dropped). Before step s the global torch RNG is seeded with mix_seed(seed, s), so an
/// interrupted and resumed run produces the same weights as an uninterrupted one.
TrainLoopResult train_loop(Trainable& model, const TrainLoopOptions& options, const std::filesystem::path& dir,
                           const LossFn& loss_fn);

/// Losses column of a losses.csv (for summaries). Missing file → empty.
std::vector<double> read_losses(const std::filesystem::path& csv);

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
