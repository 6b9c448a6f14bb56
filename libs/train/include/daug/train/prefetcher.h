#pragma once
/// A prefetching loader: worker threads load (decode, resize, ...) the items of upcoming batches into a bounded
/// window and assemble each batch (stack, pinned memory for a CUDA destination) off the consumer's thread, which
/// takes the batches in order. Used by the trainable stages through StepLoader (the Trainer's batches are a
/// deterministic function of (seed, step), so future batches are known) and by the heatmap stage.
///
/// Results do not depend on the worker count: each item is loaded by the same pure function whichever thread runs
/// it, and the batch is the items stacked in index order, exactly as the synchronous path (workers = 0) does.
/// Nothing random may happen in `item` (draw noise on the consumer's thread after next(), as the stages do).
///
/// Errors: an exception thrown while loading item j of batch k (e.g. the DataError naming the file) is rethrown,
/// unchanged, by the next() that returns batch k — the first failing item of that batch in index order, as the
/// synchronous loop would raise. Destruction (also while unwinding from an exception) drops the queued items,
/// lets each worker finish the item it is decoding, and joins every thread.
///
/// Threads: a worker runs its ATen ops with one intra-op thread (the workers are the parallelism); the consumer's
/// intra-op thread count is not changed.
#include <daug/options.h>
#include <daug/tensor.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace daug::train {

class Trainer;

struct LoaderOptions {
  int64_t workers = 2;   ///< loader threads; 0 = load each batch on the calling thread when it is asked for
  int64_t prefetch = 2;  ///< with workers > 0: batches loaded ahead of the one being consumed (>= 1)
};
/// Declares `loader_workers` and `prefetch` in a stage's table.
void visit_loader_options(OptionVisitor& v, LoaderOptions& o);

/// One assembled batch: its position, its item indices and, per part, the items' tensors stacked along a new dim 0
/// (CPU; page-locked when the job asked for it).
struct LoadedBatch {
  int64_t number = 0;
  std::vector<int64_t> indices;
  std::vector<at::Tensor> parts;
};

/// Moves a batch's parts to `device`: a plain .to() on the CPU (the tensors themselves), a non-blocking copy from
/// pinned memory on CUDA.
std::vector<at::Tensor> to_device(const std::vector<at::Tensor>& parts, const c10::Device& device);

struct PrefetchJob {
  int64_t batches = 0;  ///< batches 0 .. batches-1 are delivered in order
  /// Item indices of batch k (non-empty); called on the consumer's thread, in increasing k.
  std::function<std::vector<int64_t>(int64_t k)> indices;
  /// Loads one item as its parts (the same count and shapes for every item of a batch). Runs on worker threads:
  /// must be thread-safe and deterministic.
  std::function<std::vector<at::Tensor>(int64_t index)> item;
  bool pin_memory = false;  ///< assemble into page-locked memory: only for a CUDA destination (CPU builds refuse it)
};

class Prefetcher {
 public:
  /// Starts opts.workers threads (none for workers = 0) and schedules the first opts.prefetch batches.
  /// ConfigError on workers < 0 or prefetch < 1.
  Prefetcher(PrefetchJob job, LoaderOptions opts);
  /// Stops and joins the workers (never blocks on more than the items being loaded at that moment).
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  int64_t batches() const { return job_.batches; }
  /// Batches handed out so far.
  int64_t delivered() const { return next_; }
  /// The next batch in order; rethrows the first error of its items. std::out_of_range after the last batch.
  LoadedBatch next();

 private:
  struct Slot {
    std::vector<int64_t> indices;
    std::vector<std::vector<at::Tensor>> items;
    std::vector<std::exception_ptr> errors;
    int64_t remaining = 0;
    bool ready = false;
    LoadedBatch batch;
    std::exception_ptr error;
  };
  struct Task {
    int64_t k, j, index;
  };
  void schedule(int64_t k);  ///< under mu_
  void shutdown();
  void work();
  void assemble(Slot& slot, int64_t k) const;  ///< stacks the items (or picks the first error); no lock held

  PrefetchJob job_;
  LoaderOptions opts_;
  int64_t next_ = 0;       ///< the batch next() returns
  int64_t scheduled_ = 0;  ///< batches [next_, scheduled_) are queued, loading or ready
  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  std::deque<Task> tasks_;
  std::map<int64_t, std::unique_ptr<Slot>> slots_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

/// The batches of a Trainer's optimizer steps, loaded ahead by a Prefetcher. The sequence is rebuilt from the
/// Trainer's options with its own BatchSampler (the batch of step s is a function of (seed, s) only) and starts at
/// the first step asked for (a resumed run starts mid-way). Under a distributed launch it loads only this rank's
/// items of each step (rank_part, as the Trainer).
class StepLoader {
 public:
  /// `item` loads one dataset item as CPU tensors (see PrefetchJob::item); `device` is where get() puts them.
  StepLoader(const Trainer& trainer, std::function<std::vector<at::Tensor>(int64_t index)> item, LoaderOptions opts,
             const c10::Device& device);
  ~StepLoader();
  /// The parts of `idx` on the device. `idx` is this rank's items of `step` or a contiguous run of them:
  /// served from the prefetched batch. Anything else (another order, a step out of sequence) is loaded
  /// synchronously, so the result never depends on prefetching.
  std::vector<at::Tensor> get(const std::vector<int64_t>& idx, int64_t step);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace daug::train
