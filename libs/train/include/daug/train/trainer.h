#pragma once
/// The one resumable training loop of every trainable stage (train_classifier, train_diffusion, train_clip).
///
/// Per optimizer step s (0-based) of total_steps():
///   1. if reseed_each_step: at::manual_seed(mix_seed(seed, s))     (classifier/diffusion: resume-proof noise)
///   2. batch = sampler.batch(s) (the global batch: the same on every rank); lr = lr · lr_factor(schedule, s, ...)
///   3. train_step(batch, s, lr, fn), by default:
///        optimizer.zero_grad()
///        items = this rank's slice of `batch` (rank_part: contiguous, sizes differing by <= 1; all of it in a
///                single process)
///        for each of the k = accumulate micro-batches m of `items` (contiguous slices, sizes differing by <= 1):
///          from the second on: the random generators are set back to the step's start (reseeded, or restored)
///          out = fn(m, s) under AutocastGuard(precision, device) and BatchPartScope({offset of m in batch, |batch|})
///          check the loss is a scalar (finiteness: when the loop reads it)
///          backward(out.loss · w), w = |m|/|batch| (1 for a single process and k = 1; 1/world_size when
///                out.whole_batch; 0 for a padding part)   (fp16: the GradScaler's scaled loss; outside autocast)
///        distributed: gradients, weighted loss and parts summed over the ranks (data_parallel.h)
///        fp16: unscale the gradients, found_inf = any inf/NaN
///        for hook in after_backward: hook(*this)
///        grad_norm = clip_gradients()           global L2 norm (Σ‖g‖² accumulated in double); scaled if > grad_clip
///        optimizer_step(lr)                     AdamW (fp16: skipped when found_inf)
///        ema.update()                           if ema_rate > 0 (and the step was not skipped)
///        fp16: scaler.update(found_inf)
///      With mean-reduced per-item losses, the weighted micro-batches of all ranks give the gradient of the whole
///      batch (up to float summation order), also for uneven slices; the loss and parts logged are the weighted
///      sums. Per-item random draws made through daug::randn_like_part / randint_part (daug/batch_part.h) are the
///      unsplit batch's draws, since every micro-batch of every rank starts from the step's generator state: N ranks
///      × accumulate k train the same model as one process with k = 1. Other draws (dropout) are made per part and
///      do depend on the split. A loss that couples items across the batch (CLIP's contrastive loss) is NOT the
///      same over micro-batches or ranks: the caller must refuse or redefine it (train_clip: contrastive_group,
///      or gather = "global", which returns the global loss with whole_batch = true).
///   4. one losses.csv row; a checkpoint every `checkpoint_every` steps and/or at each epoch end, and at the end.
///
/// Data-parallel training (daug::communicator().distributed(), e.g. `daug launch --nproc N`): `batch_size` stays the
/// global batch of an optimizer step whatever the number of ranks, so N ranks × batch_size/N train the same model as
/// one rank × batch_size. At start (after rank 0 resumed from its checkpoint, if any) rank 0's whole training state
/// (model, optimizer, EMA, loss scaler, CPU generator: what the checkpoint holds) is broadcast to every rank; ranks
/// > 0 never read the checkpoint. Gradients are summed after backward, so clipping, the optimizer step and the EMA
/// see identical gradients everywhere, and the LR schedule and step counters are identical by construction. Only
/// rank 0 writes the checkpoint and losses.csv and prints progress lines. At the end the ranks compare a hash of
/// their model, optimizer and EMA state: a rank that diverged is an error, not a silently different model.
/// batch_size must be at least the number of ranks, and accumulate at most batch_size / ranks.
///
/// No host syncs per step: loss, gradient norm and loss parts stay on the device as 0-dim tensors (clipping too is
/// done on the device) and are read in one transfer every `read_every_steps` steps, before each checkpoint, when a
/// progress line is due, and at the end. losses.csv gets the same rows either way; a non-finite loss is reported
/// (step, lr) when its row is read, before any later checkpoint is written.
///
/// Mixed precision (TrainerOptions::precision): the parameters, their gradients and the optimizer state stay float32
/// (the masters); only the step function's forward runs under autocast. fp16 adds dynamic loss scaling
/// (daug/train/grad_scaler.h), whose state the checkpoint carries (`scaler.*`, through state_extra()); a skipped
/// step still counts as a loop step (AdamW's own step count, which drives its bias correction, does not advance,
/// as with torch's GradScaler).
///
/// Whatever wraps the step must keep the order backward → (all-reduce) → after_backward hooks → clip → optimizer
/// step → EMA. The all-reduce comes before the fp16 unscaling so that every rank finds the same overflow.
///
/// Resume: with resume = true and an existing checkpoint, model, optimizer, EMA and the CPU RNG state are restored
/// and the loop continues at the saved step; losses.csv keeps the rows of finished steps. An interrupted and
/// resumed run produces the same weights, bit for bit, as an uninterrupted one (on a deterministic device).
/// A checkpoint of another stage or another run length, or a truncated one, is a DataError naming file and key.
#include <daug/precision.h>
#include <daug/tensor.h>
#include <daug/train/checkpoint.h>
#include <daug/train/ema.h>
#include <daug/train/grad_scaler.h>
#include <daug/train/optimizer.h>
#include <daug/train/sampler.h>
#include <daug/train/schedule.h>
#include <daug/trainable.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace daug::train {

/// What the step function returns: the scalar, differentiable loss and named parts for losses.csv (e.g.
/// {"clip", 0.71}, {"i2c_bce", 0.12} as 0-dim tensors, on any device; the same names every step).
struct StepOutput {
  at::Tensor loss;
  std::vector<std::pair<std::string, at::Tensor>> parts;
  /// The loss is already the whole (global) batch's, identical on every rank (computed from embeddings gathered
  /// from all ranks with gradient): the trainer weights it 1/world_size instead of |items|/|batch|. Not allowed
  /// with accumulate > 1.
  bool whole_batch = false;
};

/// The caller's forward pass on the item indices of one optimizer step (`step` is 0-based).
using StepFn = std::function<StepOutput(const std::vector<int64_t>& batch, int64_t step)>;

struct TrainerOptions {
  std::string what = "train";   ///< progress label and the checkpoint's `stage` metadata
  // Length and batches.
  int64_t dataset_size = 0;     ///< number of training items
  int64_t batch_size = 8;       ///< clamped to dataset_size
  bool drop_last = true;        ///< drop the last incomplete batch of each epoch
  int64_t epochs = 1;           ///< used when steps == 0
  int64_t steps = 0;            ///< > 0: exactly this many optimizer steps (epochs ignored)
  int64_t max_steps = 0;        ///< > 0: at most this many optimizer steps
  // Randomness.
  uint64_t seed = 0;
  SeedPolicy seed_policy = SeedPolicy::mix;  ///< how each epoch's permutation is seeded
  bool reseed_each_step = false;             ///< at::manual_seed(mix_seed(seed, step)) before every step
  // Optimisation.
  double lr = 1e-4;             ///< base learning rate
  ScheduleOptions schedule;     ///< lr multiplier per step
  AdamWOptions adamw;
  std::vector<bool> decay;      ///< per-parameter decay flags (model.parameters() order); empty = all decayed
  double grad_clip = 0.0;       ///< max global gradient norm; 0 = no clipping (the norm is still logged)
  double ema_rate = 0.0;        ///< 0 = no EMA
  // Precision and micro-batches.
  Precision precision = Precision::fp32;  ///< the step function's forward under autocast; fp16 adds loss scaling
  std::string device = "cpu";             ///< device of the forward ("cpu", "cuda", "cuda:N"): which autocast to enable
  int64_t accumulate = 1;                 ///< micro-batches per optimizer step (gradient accumulation); >= 1
  GradScalerOptions scaler;               ///< fp16 only
  // Files (the stage chooses the names).
  std::filesystem::path checkpoint_path;  ///< required
  std::filesystem::path losses_path;      ///< required
  int64_t checkpoint_every = 0;           ///< > 0: a checkpoint every N steps
  bool checkpoint_each_epoch = false;     ///< a checkpoint at the end of every epoch
  bool resume = true;                     ///< continue from checkpoint_path if it exists
  std::map<std::string, std::string> metadata;  ///< extra checkpoint metadata
  // Logging.
  double log_every_s = 10.0;    ///< progress line at most this often
  int64_t log_every_steps = 0;  ///< > 0: also a progress line every N steps
  int64_t read_every_steps = 50;  ///< read the per-step loss/grad-norm/parts from the device every N steps (>= 1)
  int64_t stop_after = -1;      ///< testing aid: stop (with a checkpoint) after this many steps of this call
};

struct TrainResult {
  int64_t total_steps = 0;
  int64_t steps_per_epoch = 0;
  int64_t resumed_from = 0;     ///< step restored from a checkpoint (0: fresh start)
  int64_t steps_run = 0;        ///< steps executed by this call
  double first_loss = 0.0, last_loss = 0.0;  ///< first/last losses of losses.csv (as written, %.6g)
  double mean_last_loss = 0.0;  ///< mean of losses.csv's last 10% of steps (at least 1)
  double last_step_loss = 0.0;  ///< exact loss of the last step this call ran (0 if none)
  double seconds = 0.0;         ///< wall time of this call's steps
  NamedTensors final_state;     ///< model state at the end
  NamedTensors final_ema;       ///< model state with EMA parameters (empty without EMA)
};

/// Per-step values the loop logs (returned by train_step): 0-dim tensors, detached, left on the device until the
/// loop reads a block of them.
struct StepRecord {
  at::Tensor loss;
  at::Tensor grad_norm;
  std::vector<std::pair<std::string, at::Tensor>> parts;
  /// Distributed: parameters whose gradient was defined on some ranks only (must read 0), else undefined.
  at::Tensor ranks_disagree;
};

class Trainer {
 public:
  /// Validates the options (ConfigError) and builds optimizer, EMA and sampler over model.parameters().
  Trainer(Trainable& model, TrainerOptions options);
  virtual ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  int64_t total_steps() const { return total_; }
  int64_t steps_per_epoch() const { return sampler_.steps_per_epoch(); }
  int64_t batch_size() const { return sampler_.batch_size(); }
  /// The items of `batch` this rank trains on (rank_part with this process's rank; all of them in one process).
  RankPart rank_part(const std::vector<int64_t>& batch) const;
  const TrainerOptions& options() const { return opts_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  AdamW& optimizer() { return opt_; }
  Ema* ema() { return ema_.get(); }
  /// The fp16 loss scaler (null for fp32/bf16).
  const GradScaler* scaler() const { return scaler_.get(); }
  /// Loop steps done: AdamW's steps plus the steps the scaler skipped.
  int64_t steps_done() const;

  /// Hooks run after backward() and before clip_gradients() (gradient unscaling, all-reduce).
  std::vector<std::function<void(Trainer&)>> after_backward;

  /// Runs (or resumes) the loop to total_steps() (or stop_after) and writes the final checkpoint.
  TrainResult run(const StepFn& fn);

 protected:
  /// One optimizer step; see the header comment for the default order.
  virtual StepRecord train_step(const std::vector<int64_t>& batch, int64_t step, double lr, const StepFn& fn);
  virtual void backward(const at::Tensor& loss);
  /// Global L2 norm of the gradients before clipping (0-dim float64 on the device, not read); scales them by
  /// grad_clip / (norm + 1e-6) if norm > grad_clip, on the device.
  virtual at::Tensor clip_gradients();
  virtual void optimizer_step(double lr);
  /// Extra checkpoint tensors (the fp16 grad scaler's `scaler.*`; a subclass adds its own to these) and their
  /// restoration.
  virtual NamedTensors state_extra() const;
  virtual void load_state_extra(const NamedTensors& state, const std::string& source);

 private:
  void resume_from(const std::filesystem::path& path);
  /// Restores model, optimizer, EMA, extra state and CPU generator from `ck` (validated; DataError naming `source`).
  void restore(const TrainCheckpoint& ck, const std::string& source);
  /// Distributed: every rank takes rank 0's training state.
  void broadcast_state();
  /// Distributed: Error unless every rank holds bitwise rank 0's model, optimizer and EMA state (compared by hash).
  void check_ranks_agree();
  void save(int64_t step);

  Trainable& model_;
  TrainerOptions opts_;
  std::vector<at::Tensor> params_;
  BatchSampler sampler_;
  int64_t total_ = 0;
  AdamW opt_;
  std::unique_ptr<Ema> ema_;
  std::unique_ptr<GradScaler> scaler_;
  bool skip_step_ = false;  // fp16: this step's gradients overflowed
};

}  // namespace daug::train
