// The training loop of every trainable stage. See daug/train/trainer.h.
#include <daug/train/trainer.h>

#include <daug/batch_part.h>
#include <daug/communicator.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/seed.h>
#include <daug/train/checkpoint.h>
#include <daug/train/data_parallel.h>
#include <daug/train/losses_csv.h>
#include <daug/train/progress.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <string_view>

namespace daug::train {

namespace {
int64_t checked_total(const TrainerOptions& o, int64_t per_epoch) {
  int64_t total = 0;
  if (o.steps > 0) {
    total = o.steps;
  } else {
    DAUG_CHECK_AS(ConfigError, o.epochs >= 1, o.what, ": set steps > 0 or epochs >= 1, but got steps=", o.steps,
                  " epochs=", o.epochs);
    total = o.epochs * per_epoch;
  }
  if (o.max_steps > 0) total = std::min(total, o.max_steps);
  return total;
}

// Sets the random generators back to where they were when it was made, so that every micro-batch of a step starts
// from the step's state (as every rank does): the per-item draws of randn_like_part/randint_part are then the
// unsplit batch's. With reseed_each_step that is the step's reseed; otherwise the default CPU generator's state and,
// on a CUDA device, that device's.
class RngRewind {
 public:
  RngRewind(const TrainerOptions& o, int64_t step) : reseed_(o.reseed_each_step), seed_(mix_seed(o.seed, step)) {
    if (reseed_) return;
    cpu_ = at::detail::getDefaultCPUGenerator();
    cpu_state_ = state_of(cpu_);
    const c10::Device dev(o.device);
    if (dev.is_cuda() && at::hasCUDA()) {
      cuda_ = at::globalContext().defaultGenerator(dev);
      cuda_state_ = state_of(cuda_);
    }
  }
  void operator()() const {
    if (reseed_) {
      at::manual_seed(seed_);
      return;
    }
    set(cpu_, cpu_state_);
    if (cuda_state_.defined()) set(cuda_, cuda_state_);
  }

 private:
  static at::Tensor state_of(at::Generator& g) {
    std::lock_guard<std::mutex> lock(g.mutex());
    return g.get_state();
  }
  static void set(const at::Generator& g, const at::Tensor& state) {
    at::Generator copy = g;
    std::lock_guard<std::mutex> lock(copy.mutex());
    copy.set_state(state);
  }
  bool reseed_;
  uint64_t seed_;
  at::Generator cpu_, cuda_;
  at::Tensor cpu_state_, cuda_state_;
};
}  // namespace

Trainer::Trainer(Trainable& model, TrainerOptions options)
    : model_(model),
      opts_(std::move(options)),
      params_(model.parameters()),
      sampler_(opts_.dataset_size, opts_.batch_size, opts_.drop_last, opts_.seed, opts_.seed_policy),
      opt_(params_, opts_.adamw, opts_.decay) {
  total_ = checked_total(opts_, sampler_.steps_per_epoch());
  DAUG_CHECK_AS(ConfigError, total_ >= 1, opts_.what, ": the run has no optimizer step (",
                sampler_.steps_per_epoch(), " steps per epoch)");
  DAUG_CHECK_AS(ConfigError, opts_.grad_clip >= 0, opts_.what, ": grad_clip must be >= 0, but got ", opts_.grad_clip);
  DAUG_CHECK_AS(ConfigError, opts_.read_every_steps >= 1, opts_.what, ": read_every_steps must be >= 1, but got ",
                opts_.read_every_steps);
  DAUG_CHECK(!opts_.checkpoint_path.empty() && !opts_.losses_path.empty(), opts_.what,
             ": the trainer needs a checkpoint path and a losses.csv path");
  if (opts_.ema_rate > 0.0) ema_ = std::make_unique<Ema>(params_, opts_.ema_rate);
  DAUG_CHECK_AS(ConfigError, opts_.accumulate >= 1, opts_.what, ": accumulate must be >= 1, but got ",
                opts_.accumulate);
  const int world = communicator().world_size();
  DAUG_CHECK_AS(ConfigError, sampler_.batch_size() >= world, opts_.what, ": batch_size = ", sampler_.batch_size(),
                " must be at least the number of ranks (", world,
                "): batch_size is the global batch of a step, split over the ranks");
  if (world == 1)
    DAUG_CHECK_AS(ConfigError, opts_.accumulate <= sampler_.batch_size(), opts_.what,
                  ": accumulate = ", opts_.accumulate,
                  " micro-batches need at least as many items per batch, but the batch has ", sampler_.batch_size());
  else
    DAUG_CHECK_AS(ConfigError, opts_.accumulate <= sampler_.batch_size() / world, opts_.what,
                  ": accumulate = ", opts_.accumulate,
                  " micro-batches need at least as many items per rank, but batch_size = ", sampler_.batch_size(),
                  " over ", world, " ranks gives ", sampler_.batch_size() / world);
  if (opts_.precision == Precision::fp16) scaler_ = std::make_unique<GradScaler>(opts_.scaler);
}

Trainer::~Trainer() = default;

void Trainer::backward(const at::Tensor& loss) {
  if (scaler_) scaler_->scale_loss(loss).backward();
  else loss.backward();
}

NamedTensors Trainer::state_extra() const { return scaler_ ? scaler_->state() : NamedTensors{}; }

void Trainer::load_state_extra(const NamedTensors& state, const std::string& source) {
  if (scaler_) scaler_->load_state(state, source);
}

int64_t Trainer::steps_done() const { return opt_.steps() + (scaler_ ? scaler_->skipped() : 0); }

at::Tensor Trainer::clip_gradients() {
  std::vector<at::Tensor> sums;
  for (const auto& p : params_)
    if (p.grad().defined()) sums.push_back(p.grad().pow(2).sum());
  if (sums.empty()) return at::zeros({}, at::TensorOptions().dtype(at::kDouble));
  // Σ‖g‖² in float64, in parameter order: the CPU cumsum is a sequential scan, so these are the sums of a host loop
  // `total += s_i`, bit for bit, without reading anything back.
  const at::Tensor total = at::stack(sums).to(at::kDouble).cumsum(0).select(0, -1).sqrt();
  const double max_norm = opts_.grad_clip;
  if (max_norm > 0) {
    // factor max_norm / (norm + 1e-6) exactly when norm > max_norm, else 1 (g·1 = g): the host rule, on the device.
    const at::Tensor f = at::where(total > max_norm, max_norm / (total + 1e-6), at::ones_like(total));
    at::NoGradGuard g;
    for (const auto& p : params_)
      if (p.grad().defined()) p.grad().mul_(f);
  }
  return total;
}

void Trainer::optimizer_step(double lr) {
  if (!skip_step_) opt_.step(lr);
}

RankPart Trainer::rank_part(const std::vector<int64_t>& batch) const {
  const Communicator& comm = communicator();
  return train::rank_part(batch, comm.rank(), comm.world_size(), opts_.accumulate);
}

StepRecord Trainer::train_step(const std::vector<int64_t>& batch, int64_t step, double lr, const StepFn& fn) {
  Communicator& comm = communicator();
  const int world = comm.world_size();
  const auto total = static_cast<int64_t>(batch.size());
  const RankPart part = rank_part(batch);
  const auto n = static_cast<int64_t>(part.items.size());
  const int64_t k = std::max<int64_t>(1, std::min(opts_.accumulate, n));
  StepRecord rec;
  opt_.zero_grad();
  std::optional<RngRewind> rewind;
  if (k > 1) rewind.emplace(opts_, step);
  for (int64_t i = 0; i < k; ++i) {
    const Slice m = split(n, k, i);
    if (i > 0) (*rewind)();
    StepOutput out;
    {
      BatchPartScope scope({part.offset + m.offset, total});
      AutocastGuard autocast(opts_.precision, opts_.device);
      out = m.size == n
                ? fn(part.items, step)
                : fn(std::vector<int64_t>(part.items.begin() + m.offset, part.items.begin() + m.offset + m.size), step);
    }
    DAUG_CHECK(out.loss.defined() && out.loss.numel() == 1, opts_.what, ": the loss must be a scalar tensor");
    DAUG_CHECK(!out.whole_batch || k == 1, opts_.what,
               ": the step function returned the whole batch's loss, which cannot be split into accumulate = ",
               opts_.accumulate, " micro-batches");
    // Values stay on the device: they are checked for NaN/Inf when the loop reads them (run()).
    if (k == 1 && world == 1) {  // exactly the single-batch arithmetic (no weighting op)
      rec.loss = out.loss.detach();
      backward(out.loss);
      for (auto& [name, v] : out.parts) rec.parts.emplace_back(std::move(name), v.detach());
      break;
    }
    // Mean-reduced losses: weight each micro-batch by its share of the global batch so that the gradients of all
    // micro-batches of all ranks sum to the batch's.
    const double w = part.padding      ? 0.0
                     : out.whole_batch ? 1.0 / static_cast<double>(world)
                                       : static_cast<double>(m.size) / static_cast<double>(total);
    const at::Tensor wl = out.loss.detach().to(at::kDouble) * w;
    rec.loss = i == 0 ? wl : rec.loss + wl;
    backward(out.loss * w);
    if (i == 0) {
      for (auto& [name, v] : out.parts) rec.parts.emplace_back(std::move(name), v.detach().to(at::kDouble) * w);
    } else {
      DAUG_CHECK(out.parts.size() == rec.parts.size(), opts_.what, ": the step function returned ", out.parts.size(),
                 " loss parts for micro-batch ", i, " but ", rec.parts.size(), " for the first");
      for (size_t j = 0; j < rec.parts.size(); ++j)
        rec.parts[j].second = rec.parts[j].second + out.parts[j].second.detach().to(at::kDouble) * w;
    }
  }
  if (world > 1) {
    // Before the fp16 unscaling: every rank then sees the same overflow and skips the same steps.
    std::vector<at::Tensor> v{rec.loss.reshape({1})};
    for (const auto& p : rec.parts) v.push_back(p.second.reshape({1}).to(rec.loss.device(), at::kDouble));
    at::Tensor values = at::cat(v);
    rec.ranks_disagree =
        all_reduce_gradients(params_, values, comm, fmt::format("{} step {}: gradient all-reduce", opts_.what, step));
    rec.loss = values[0];
    for (size_t j = 0; j < rec.parts.size(); ++j) rec.parts[j].second = values[static_cast<int64_t>(j) + 1];
  }
  // fp16 only: whether to skip the step is a host decision (one read per step, as torch's GradScaler.step makes).
  skip_step_ = scaler_ && scaler_->unscale(params_);
  for (auto& hook : after_backward) hook(*this);
  rec.grad_norm = clip_gradients();
  optimizer_step(lr);
  if (ema_ && !skip_step_) ema_->update();
  if (scaler_) {
    if (skip_step_)
      log::info("{}: step {}: float16 gradients overflowed at loss scale {}; step skipped, scale halved", opts_.what,
                step, scaler_->scale());
    scaler_->update(skip_step_);
  }
  skip_step_ = false;
  return rec;
}

void Trainer::resume_from(const std::filesystem::path& path) {
  const std::string src = path.string();
  TrainCheckpoint ck = load_checkpoint(path);
  DAUG_CHECK_AS(DataError, ck.info.stage == opts_.what, src, ": metadata key 'stage' is '", ck.info.stage,
                "', but this is ", opts_.what, " (a checkpoint of another stage; delete the file to start over)");
  DAUG_CHECK_AS(DataError, ck.info.total_steps == total_, src, ": metadata key 'total_steps' is ",
                ck.info.total_steps, " but this run has ", total_, " steps (delete the file to start over)");
  DAUG_CHECK_AS(DataError, ck.info.step >= 0 && ck.info.step <= total_, src, ": metadata key 'step' is ",
                ck.info.step, ", outside [0, ", total_, "]");
  DAUG_CHECK_AS(DataError, ck.rng.defined(), src, ": missing key '", kRngKey, "'");
  restore(ck, src);
}

void Trainer::restore(const TrainCheckpoint& ck, const std::string& src) {
  // The model, the optimizer and the EMA each validate before copying (a bad file fails on the first of them).
  try {
    model_.load_state(ck.model);
  } catch (const DataError& e) {
    throw DataError(fmt::format("{}: {}", src, e.what()));
  }
  opt_.load_state(ck.state, src);
  if (ema_) ema_->load_state(ck.state, src);
  load_state_extra(ck.state, src);
  DAUG_CHECK_AS(DataError, steps_done() == ck.info.step, src, ": key 'optim.step' is ", opt_.steps(),
                scaler_ ? fmt::format(" (+ {} skipped float16 steps)", scaler_->skipped()) : std::string(),
                " but metadata key 'step' is ", ck.info.step);
  set_cpu_rng_state(ck.rng, src);
}

void Trainer::broadcast_state() {
  Communicator& comm = communicator();
  constexpr const char* kStepKey = "trainer.step";
  NamedTensors all;
  if (comm.is_main()) {
    for (auto& [k, t] : model_.state()) all.emplace_back(kModelPrefix + k, t);
    for (auto& kv : opt_.state()) all.push_back(std::move(kv));
    for (auto& kv : state_extra()) all.push_back(std::move(kv));
    if (ema_)
      for (auto& kv : ema_->state()) all.push_back(std::move(kv));
    all.emplace_back(kRngKey, cpu_rng_state());
    all.emplace_back(kStepKey, at::scalar_tensor(steps_done(), at::kLong));
  }
  all = broadcast_named(all, 0, comm, fmt::format("{}: broadcast of rank 0's training state", opts_.what),
                        c10::Device(opts_.device));
  if (comm.is_main()) return;
  TrainCheckpoint ck;
  ck.model = model_state(all);
  for (auto& [k, t] : all) {
    if (k == kRngKey) ck.rng = t;
    else if (k == kStepKey) ck.info.step = t.item<int64_t>();
    else if (k.rfind(kModelPrefix, 0) != 0) ck.state.emplace_back(k, t);
  }
  restore(ck, "rank 0's training state");
}

void Trainer::check_ranks_agree() {
  Communicator& comm = communicator();
  NamedTensors all = model_.state();
  for (auto& kv : opt_.state()) all.push_back(std::move(kv));
  if (ema_)
    for (auto& kv : ema_->state()) all.push_back(std::move(kv));
  size_t h = 0;
  for (const auto& [name, t] : all) {
    const at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const std::string_view bytes(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
    h = h * 1000003u ^ std::hash<std::string_view>{}(name) ^ (std::hash<std::string_view>{}(bytes) << 1);
  }
  const std::vector<std::string> hashes =
      comm.all_gather_bytes(std::to_string(h), fmt::format("{}: comparing the ranks' final states", opts_.what));
  for (size_t r = 1; r < hashes.size(); ++r)
    DAUG_CHECK(hashes[r] == hashes[0], opts_.what, ": after training, rank ", r,
               "'s model/optimizer/EMA state differs from rank 0's (hash ", hashes[r], " vs ", hashes[0],
               "): the ranks diverged");
  if (comm.is_main())
    log::info("{}: model, optimizer and EMA state identical on all {} ranks", opts_.what, comm.world_size());
}

void Trainer::save(int64_t step) {
  CheckpointInfo info;
  info.step = step;
  info.total_steps = total_;
  info.seed = opts_.seed;
  info.stage = opts_.what;
  info.complete = step >= total_;
  info.extra = opts_.metadata;
  NamedTensors optim = opt_.state();
  for (auto& kv : state_extra()) optim.push_back(std::move(kv));
  save_checkpoint(opts_.checkpoint_path, info, model_.state(), optim, ema_ ? ema_->state() : NamedTensors{},
                  cpu_rng_state());
}

TrainResult Trainer::run(const StepFn& fn) {
  TrainResult res;
  res.total_steps = total_;
  res.steps_per_epoch = sampler_.steps_per_epoch();
  const int64_t per_epoch = res.steps_per_epoch;

  model_.set_training(true);
  Communicator& comm = communicator();
  const bool main = comm.is_main();  // rank 0 alone reads and writes the checkpoint and losses.csv
  if (main && opts_.resume && std::filesystem::exists(opts_.checkpoint_path)) {
    resume_from(opts_.checkpoint_path);
    log::info("{}: resuming from {} at step {}/{}", opts_.what, opts_.checkpoint_path.string(), steps_done(), total_);
  }
  if (comm.distributed()) {
    const Slice mine = split(sampler_.batch_size(), comm.world_size(), comm.rank());
    log::info("{}: rank {} of {} trains on items [{}, {}) of each batch of {} (gradients summed over the ranks)",
              opts_.what, comm.rank(), comm.world_size(), mine.offset, mine.offset + mine.size, sampler_.batch_size());
    comm.set_phase(fmt::format("{}: training", opts_.what));
    broadcast_state();
    if (!main && steps_done() > 0)
      log::info("{}: rank {} resumes at step {}/{} with rank 0's state", opts_.what, comm.rank(), steps_done(), total_);
  }
  const int64_t start = steps_done();
  res.resumed_from = start;
  std::optional<LossesCsv> csv;
  if (main) csv.emplace(opts_.losses_path, start);

  Progress progress(opts_.what, total_, start, opts_.log_every_s, "it");
  const auto t0 = std::chrono::steady_clock::now();
  // Rows whose values are still on the device; read in one transfer (the only host sync of the loop) by flush_rows.
  struct Pending {
    LossRow row;
    StepRecord rec;
  };
  std::vector<Pending> pending;
  auto flush_rows = [&] {
    if (pending.empty()) return;
    std::vector<at::Tensor> values;
    const at::Device dev = pending.front().rec.loss.device();
    auto add = [&](const at::Tensor& v) { values.push_back(v.reshape({}).to(dev, at::kDouble)); };
    for (const auto& p : pending) {
      add(p.rec.loss);
      add(p.rec.grad_norm);
      for (const auto& part : p.rec.parts) add(part.second);
      if (p.rec.ranks_disagree.defined()) add(p.rec.ranks_disagree);
    }
    const at::Tensor host = at::stack(values).to(at::kCPU).contiguous();
    const double* v = host.data_ptr<double>();
    for (auto& p : pending) {
      LossRow& row = p.row;
      row.loss = *v++;
      DAUG_CHECK(std::isfinite(row.loss), opts_.what, ": loss became ", row.loss, " at step ", row.step, " (lr=",
                 row.lr, "); lower the learning rate or check the inputs");
      row.grad_norm = *v++;
      for (const auto& part : p.rec.parts) row.parts.emplace_back(part.first, *v++);
      if (p.rec.ranks_disagree.defined()) {
        const double n = *v++;
        DAUG_CHECK(n == 0, opts_.what, ": at step ", row.step, " the gradients of ", n,
                   " parameter tensor(s) were defined on some ranks but not on others (a parameter used by some "
                   "ranks' forward only); their updates would differ between ranks");
      }
      if (csv) csv->append(row);
      res.last_step_loss = row.loss;
    }
    pending.clear();
  };
  int64_t step = start;
  for (; step < total_; ++step) {
    if (opts_.stop_after >= 0 && res.steps_run >= opts_.stop_after) break;
    if (opts_.reseed_each_step) at::manual_seed(mix_seed(opts_.seed, static_cast<uint64_t>(step)));
    const double lr = opts_.lr * lr_factor(opts_.schedule, step, total_, per_epoch);
    const std::vector<int64_t> batch = sampler_.batch(step);
    StepRecord rec = train_step(batch, step, lr, fn);
    DAUG_CHECK(rec.loss.defined() && rec.grad_norm.defined(), opts_.what, ": train_step returned no loss or norm");
    ++res.steps_run;

    Pending p;
    p.row.step = step;
    p.row.epoch = step / per_epoch;
    p.row.lr = lr;
    p.row.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p.rec = std::move(rec);
    pending.push_back(std::move(p));
    const bool forced = opts_.log_every_steps > 0 && ((step + 1) % opts_.log_every_steps == 0 || step == start);
    const bool log_now = main && progress.due(step + 1, forced);  // progress lines: rank 0 only
    if (log_now || static_cast<int64_t>(pending.size()) >= opts_.read_every_steps) flush_rows();
    if (log_now)
      progress.update(step + 1, fmt::format("epoch {} loss={:.4f} lr={:.3g}", step / per_epoch, res.last_step_loss,
                                            lr), /*force=*/true);
    else
      progress.advance(step + 1);

    const bool more = step + 1 < total_;
    const bool every = opts_.checkpoint_every > 0 && (step + 1) % opts_.checkpoint_every == 0;
    const bool epoch_end = opts_.checkpoint_each_epoch && (step + 1) % per_epoch == 0;
    if (more && (every || epoch_end)) {
      flush_rows();
      if (main) {
        csv->flush();
        save(step + 1);
      }
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  flush_rows();
  if (main) {
    csv->flush();
    save(step);
  }
  if (comm.distributed()) check_ranks_agree();

  std::vector<double> losses = main ? read_losses(opts_.losses_path) : std::vector<double>{};
  if (!losses.empty()) {
    res.first_loss = losses.front();
    res.last_loss = losses.back();
    const size_t tail = std::max<size_t>(1, losses.size() / 10);
    res.mean_last_loss = std::accumulate(losses.end() - static_cast<std::ptrdiff_t>(tail), losses.end(), 0.0) /
                         static_cast<double>(tail);
  }
  res.final_state = model_.state();
  if (ema_) res.final_ema = ema_->substitute(res.final_state);
  return res;
}

}  // namespace daug::train
