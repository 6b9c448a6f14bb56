// The resumable training loop shared by train_classifier and train_diffusion. See daug/stages/common.h.
#include <daug/stages/common.h>

#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/log.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

namespace daug::stages {

uint64_t mix_seed(uint64_t seed, uint64_t salt) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (salt + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

int64_t total_steps(const TrainLoopOptions& o) {
  DAUG_CHECK_AS(ConfigError, o.batch_size >= 1, "batch_size must be >= 1, but got ", o.batch_size);
  DAUG_CHECK_AS(ConfigError, o.dataset_size >= 1, "the training split has no items");
  if (o.steps > 0) return o.steps;
  DAUG_CHECK_AS(ConfigError, o.epochs >= 1, "set steps > 0 or epochs >= 1, but got steps=", o.steps,
                " epochs=", o.epochs);
  return o.epochs * std::max<int64_t>(1, o.dataset_size / o.batch_size);
}

std::vector<int64_t> batch_indices(const TrainLoopOptions& o, int64_t step) {
  const int64_t n = o.dataset_size;
  const int64_t b = std::min(o.batch_size, n);
  const int64_t per_epoch = std::max<int64_t>(1, n / b);
  const int64_t epoch = step / per_epoch, pos = step % per_epoch;
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::mt19937_64 rng(mix_seed(o.seed, 0x5eed0000ULL + static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates with an explicit draw (std::shuffle is unspecified)
    auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return {perm.begin() + pos * b, perm.begin() + (pos + 1) * b};
}

namespace {

const char* kCsvHeader = "step,epoch,loss,lr,elapsed_s";

struct CsvRow {
  int64_t step;
  std::string line;
};

// Rows of an existing losses.csv with step < keep_below (a resumed run drops what it will redo).
std::vector<CsvRow> read_rows(const std::filesystem::path& csv, int64_t keep_below) {
  std::vector<CsvRow> rows;
  std::ifstream in(csv);
  if (!in) return rows;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (lineno == 1 || line.empty()) continue;
    auto comma = line.find(',');
    int64_t step = 0;
    try {
      step = std::stoll(line.substr(0, comma));
    } catch (const std::exception&) {
      throw DataError(fmt::format("{}:{}: expected an integer step in the first column, but got '{}'",
                                  csv.string(), lineno, line.substr(0, comma)));
    }
    if (step < keep_below) rows.push_back({step, line});
  }
  return rows;
}

NamedTensors with_prefix(const NamedTensors& in, const std::string& prefix) {
  NamedTensors out;
  out.reserve(in.size());
  for (const auto& [k, v] : in) out.emplace_back(prefix + k, v);
  return out;
}

NamedTensors strip_prefix(const NamedTensors& in, const std::string& prefix) {
  NamedTensors out;
  for (const auto& [k, v] : in)
    if (k.rfind(prefix, 0) == 0) out.emplace_back(k.substr(prefix.size()), v);
  return out;
}

}  // namespace

std::vector<double> read_losses(const std::filesystem::path& csv) {
  std::vector<double> out;
  for (const auto& row : read_rows(csv, INT64_MAX)) {
    std::stringstream ss(row.line);
    std::string cell;
    std::vector<std::string> cells;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    if (cells.size() >= 3) out.push_back(std::stod(cells[2]));
  }
  return out;
}

TrainLoopResult train_loop(Trainable& model, const TrainLoopOptions& o, const std::filesystem::path& dir,
                           const LossFn& loss_fn) {
  TrainLoopResult res;
  res.total_steps = total_steps(o);
  const int64_t per_epoch = std::max<int64_t>(1, o.dataset_size / std::min(o.batch_size, o.dataset_size));
  std::filesystem::create_directories(dir);
  const auto ckpt_path = dir / kCheckpointFile;
  const auto csv_path = dir / kLossesFile;

  model.set_training(true);
  std::vector<at::Tensor> params = model.parameters();
  AdamW opt(params, AdamWOptions{o.lr, 0.9, 0.999, 1e-8, o.weight_decay});
  std::unique_ptr<Ema> ema;
  if (o.ema_rate > 0.0) ema = std::make_unique<Ema>(params, o.ema_rate);

  int64_t start = 0;
  if (o.resume && std::filesystem::exists(ckpt_path)) {
    SafetensorsFile f = load_safetensors(ckpt_path);
    const std::string src = ckpt_path.string();
    auto it = f.metadata.find("step");
    DAUG_CHECK_AS(DataError, it != f.metadata.end(), src, ": missing metadata 'step'");
    start = std::stoll(it->second);
    auto tot = f.metadata.find("total_steps");
    DAUG_CHECK_AS(DataError, tot != f.metadata.end() && std::stoll(tot->second) == res.total_steps, src,
                  ": checkpoint was written for total_steps=", tot == f.metadata.end() ? "?" : tot->second,
                  " but this run has ", res.total_steps, " (delete the file to start over)");
    model.load_state(strip_prefix(f.tensors, "model."));
    opt.load_state(f.tensors, src);
    if (ema) ema->load_state(f.tensors, src);
    log::info("{}: resuming from {} at step {}/{}", o.what, src, start, res.total_steps);
  }
  res.resumed_from = start;

  // losses.csv: keep the rows of finished steps, then append.
  {
    std::string text = std::string(kCsvHeader) + "\n";
    for (const auto& r : read_rows(csv_path, start)) text += r.line + "\n";
    write_file_atomic(csv_path, text);
  }
  std::ofstream csv(csv_path, std::ios::app);
  DAUG_CHECK_AS(DataError, static_cast<bool>(csv), "cannot append to ", csv_path.string());

  auto save_checkpoint = [&](int64_t step) {
    NamedTensors all = with_prefix(model.state(), "model.");
    for (auto& kv : opt.state()) all.push_back(kv);
    if (ema)
      for (auto& kv : ema->state()) all.push_back(kv);
    csv.flush();
    save_safetensors(ckpt_path, all,
                     {{"step", std::to_string(step)},
                      {"total_steps", std::to_string(res.total_steps)},
                      {"seed", std::to_string(o.seed)},
                      {"stage", o.what}});
  };

  Progress progress(o.what, res.total_steps, start, o.log_every_s, "it");
  auto t0 = std::chrono::steady_clock::now();
  double last_loss = NAN;
  int64_t step = start;
  for (; step < res.total_steps; ++step) {
    if (o.stop_after >= 0 && res.steps_run >= o.stop_after) break;
    at::manual_seed(mix_seed(o.seed, static_cast<uint64_t>(step)));
    const double lr = o.anneal_lr ? annealed_lr(o.lr, step, res.total_steps) : o.lr;
    at::Tensor loss = loss_fn(batch_indices(o, step), step);
    DAUG_CHECK(loss.defined() && loss.numel() == 1, o.what, ": the loss must be a scalar tensor");
    opt.zero_grad();
    loss.backward();
    last_loss = loss.item<double>();
    DAUG_CHECK(std::isfinite(last_loss), o.what, ": loss became ", last_loss, " at step ", step,
               " (lr=", lr, "); lower the learning rate or check the inputs");
    opt.step(lr);
    if (ema) ema->update();
    ++res.steps_run;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    csv << fmt::format("{},{},{:.6g},{:.6g},{:.3f}\n", step, step / per_epoch, last_loss, lr, elapsed);
    progress.update(step + 1, fmt::format("loss={:.4f} lr={:.3g}", last_loss, lr));
    if (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0 && step + 1 < res.total_steps)
      save_checkpoint(step + 1);
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  save_checkpoint(step);
  csv.close();

  std::vector<double> losses = read_losses(csv_path);
  if (!losses.empty()) {
    res.first_loss = losses.front();
    res.last_loss = losses.back();
    size_t tail = std::max<size_t>(1, losses.size() / 10);
    res.mean_last_loss =
        std::accumulate(losses.end() - static_cast<std::ptrdiff_t>(tail), losses.end(), 0.0) / static_cast<double>(tail);
  }
  res.final_state = model.state();
  if (ema) res.final_ema = ema->substitute(res.final_state);
  return res;
}

}  // namespace daug::stages
