// Prefetcher and StepLoader (see daug/train/prefetcher.h).
#include <daug/train/prefetcher.h>

#include <daug/communicator.h>
#include <daug/error.h>
#include <daug/train/sampler.h>
#include <daug/train/trainer.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <stdexcept>

// The OpenMP runtime LibTorch was built with (Debian: libgomp; pip wheels: a bundled, renamed libgomp exporting the
// same symbol). Weak, so a build without OpenMP simply has no per-thread count to set.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

namespace daug::train {

namespace {

// Makes this thread's ATen ops single-threaded without touching the process-wide count: ATen's per-thread lazy
// initialisation runs first (at::get_num_threads), which would otherwise re-apply the global count on the first
// parallel op; then only this thread's OpenMP team size is set. at::set_num_threads(1) would also change the
// count every thread started later inherits.
void single_threaded_aten() {
  (void)at::get_num_threads();
  if (&omp_set_num_threads != nullptr) omp_set_num_threads(1);
}

}  // namespace

void visit_loader_options(OptionVisitor& v, LoaderOptions& o) {
  v("loader_workers", o.workers,
    "threads that decode and resize the next batches while the current one is "
    "processed (0 = load on the main thread, synchronously); results are identical for every value",
    Check::at_least(0).for_runtime());
  v("prefetch", o.prefetch, "with loader_workers > 0: batches loaded ahead (memory: this many batches of images)",
    Check::at_least(1).for_runtime());
}

std::vector<at::Tensor> to_device(const std::vector<at::Tensor>& parts, const c10::Device& device) {
  std::vector<at::Tensor> out;
  out.reserve(parts.size());
  for (const auto& p : parts)
    out.push_back(device.is_cuda() ? p.to(device, /*non_blocking=*/p.is_pinned()) : p.to(device));
  return out;
}

Prefetcher::Prefetcher(PrefetchJob job, LoaderOptions opts) : job_(std::move(job)), opts_(opts) {
  DAUG_CHECK_AS(ConfigError, opts_.workers >= 0, "loader_workers must be >= 0, but got ", opts_.workers);
  DAUG_CHECK_AS(ConfigError, opts_.prefetch >= 1, "prefetch must be >= 1, but got ", opts_.prefetch);
  DAUG_CHECK(job_.batches >= 0 && job_.indices && job_.item, "Prefetcher: a job needs batches >= 0, indices and item");
  if (opts_.workers == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (scheduled_ < job_.batches && scheduled_ < opts_.prefetch) schedule(scheduled_);
  }
  threads_.reserve(static_cast<size_t>(opts_.workers));
  try {
    for (int64_t w = 0; w < opts_.workers; ++w) threads_.emplace_back([this] { work(); });
  } catch (...) {
    shutdown();  // join what started: the destructor does not run for a failed constructor
    throw;
  }
}

Prefetcher::~Prefetcher() { shutdown(); }

void Prefetcher::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    tasks_.clear();
  }
  work_cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void Prefetcher::schedule(int64_t k) {
  auto slot = std::make_unique<Slot>();
  slot->indices = job_.indices(k);
  DAUG_CHECK(!slot->indices.empty(), "Prefetcher: batch ", k, " has no items");
  const auto n = static_cast<int64_t>(slot->indices.size());
  slot->items.resize(static_cast<size_t>(n));
  slot->errors.resize(static_cast<size_t>(n));
  slot->remaining = n;
  for (int64_t j = 0; j < n; ++j) tasks_.push_back({k, j, slot->indices[static_cast<size_t>(j)]});
  slots_[k] = std::move(slot);
  ++scheduled_;
}

void Prefetcher::assemble(Slot& slot, int64_t k) const {
  slot.batch.number = k;
  slot.batch.indices = slot.indices;
  try {
    for (const auto& e : slot.errors)
      if (e) std::rethrow_exception(e);  // the first failing item in index order, as the synchronous loop raises
    const size_t parts = slot.items.front().size();
    for (const auto& it : slot.items)
      DAUG_CHECK(it.size() == parts, "Prefetcher: the items of batch ", k, " have different part counts (", parts,
                 " and ", it.size(), ")");
    for (size_t p = 0; p < parts; ++p) {
      std::vector<at::Tensor> xs;
      xs.reserve(slot.items.size());
      for (const auto& it : slot.items) xs.push_back(it[p]);
      if (job_.pin_memory) {
        auto sizes = xs.front().sizes().vec();
        sizes.insert(sizes.begin(), static_cast<int64_t>(xs.size()));
        at::Tensor out = at::empty(sizes, xs.front().options().pinned_memory(true));
        at::stack_out(out, xs);
        slot.batch.parts.push_back(out);
      } else {
        slot.batch.parts.push_back(at::stack(xs));
      }
    }
  } catch (...) {
    slot.error = std::current_exception();
    slot.batch.parts.clear();
  }
  slot.items.clear();
  slot.errors.clear();
}

void Prefetcher::work() {
  single_threaded_aten();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
    if (stop_) return;
    const Task t = tasks_.front();
    tasks_.pop_front();
    Slot* slot = slots_.at(t.k).get();  // stable: a slot is erased only after it is ready, i.e. after this task
    lock.unlock();
    std::vector<at::Tensor> parts;
    std::exception_ptr err;
    try {
      parts = job_.item(t.index);
    } catch (...) {
      err = std::current_exception();
    }
    lock.lock();
    slot->items[static_cast<size_t>(t.j)] = std::move(parts);
    slot->errors[static_cast<size_t>(t.j)] = err;
    if (--slot->remaining > 0) continue;
    lock.unlock();
    assemble(*slot, t.k);  // the last item's worker assembles the batch, off the consumer's thread
    lock.lock();
    slot->ready = true;
    ready_cv_.notify_all();
  }
}

LoadedBatch Prefetcher::next() {
  if (next_ >= job_.batches)
    throw std::out_of_range("Prefetcher::next: all " + std::to_string(job_.batches) + " batches were delivered");
  const int64_t k = next_++;
  if (opts_.workers == 0) {  // synchronous: today's loop, on this thread
    Slot slot;
    slot.indices = job_.indices(k);
    DAUG_CHECK(!slot.indices.empty(), "Prefetcher: batch ", k, " has no items");
    for (int64_t i : slot.indices) {
      slot.items.push_back(job_.item(i));  // an error propagates from here, as before
      slot.errors.emplace_back();
    }
    assemble(slot, k);
    if (slot.error) std::rethrow_exception(slot.error);
    return std::move(slot.batch);
  }
  std::unique_ptr<Slot> slot;
  {
    std::unique_lock<std::mutex> lock(mu_);
    ready_cv_.wait(lock, [&] { return slots_.at(k)->ready; });
    slot = std::move(slots_.at(k));
    slots_.erase(k);
    if (scheduled_ < job_.batches) schedule(scheduled_);  // keeps `prefetch` batches in flight
  }
  work_cv_.notify_all();
  if (slot->error) std::rethrow_exception(slot->error);
  return std::move(slot->batch);
}

// ------------------------------------------------------------------------------------------------ StepLoader

struct StepLoader::State {
  BatchSampler sampler;
  int rank, world;  ///< each rank prefetches only the items it trains on (its slice of each step's batch)
  int64_t accumulate;
  int64_t total;
  std::function<std::vector<at::Tensor>(int64_t)> item;
  LoaderOptions opts;
  c10::Device device;
  int64_t first = -1;  ///< the step the prefetched sequence starts at
  std::unique_ptr<Prefetcher> pf;
  int64_t cur_step = -1;
  std::vector<int64_t> cur_idx;
  std::vector<at::Tensor> cur_parts;  ///< on the device
};

StepLoader::StepLoader(const Trainer& trainer, std::function<std::vector<at::Tensor>(int64_t)> item, LoaderOptions opts,
                       const c10::Device& device) {
  const TrainerOptions& o = trainer.options();
  const Communicator& comm = communicator();
  s_.reset(new State{BatchSampler(o.dataset_size, o.batch_size, o.drop_last, o.seed, o.seed_policy), comm.rank(),
                     comm.world_size(), o.accumulate, trainer.total_steps(), std::move(item), opts, device});
}

StepLoader::~StepLoader() = default;

std::vector<at::Tensor> StepLoader::get(const std::vector<int64_t>& idx, int64_t step) {
  State& s = *s_;
  if (!s.pf && step >= 0 && step < s.total) {
    s.first = step;
    PrefetchJob job;
    job.batches = s.total - step;
    job.indices = [&s](int64_t k) {
      return rank_part(s.sampler.batch(s.first + k), s.rank, s.world, s.accumulate).items;
    };
    job.item = s.item;
    job.pin_memory = s.device.is_cuda();
    s.pf = std::make_unique<Prefetcher>(std::move(job), s.opts);
  }
  if (step != s.cur_step && s.pf && step == s.first + s.pf->delivered() && s.pf->delivered() < s.pf->batches()) {
    LoadedBatch b = s.pf->next();
    s.cur_step = step;
    s.cur_idx = std::move(b.indices);
    s.cur_parts = to_device(b.parts, s.device);
  }
  if (step == s.cur_step && !idx.empty() && idx.size() <= s.cur_idx.size()) {
    for (size_t o = 0; o + idx.size() <= s.cur_idx.size(); ++o) {
      if (!std::equal(idx.begin(), idx.end(), s.cur_idx.begin() + static_cast<std::ptrdiff_t>(o))) continue;
      if (idx.size() == s.cur_idx.size()) return s.cur_parts;
      std::vector<at::Tensor> out;
      for (const auto& p : s.cur_parts)
        out.push_back(p.slice(0, static_cast<int64_t>(o), static_cast<int64_t>(o + idx.size())));
      return out;
    }
  }
  // Not the prefetched sequence: load these items here, as the synchronous path does.
  PrefetchJob job;
  job.batches = 1;
  job.indices = [&idx](int64_t) { return idx; };
  job.item = s.item;
  Prefetcher sync(std::move(job), LoaderOptions{0, 1});
  return to_device(sync.next().parts, s.device);
}

}  // namespace daug::train
