// The Trainer loop: bit-identical resume (with per-step reseeding and with the checkpointed RNG state), the
// checkpoint layout and its round trip, truncated/foreign checkpoints, losses.csv, clipping, hooks; progress format.
#include <daug/train/checkpoint.h>
#include <daug/train/losses_csv.h>
#include <daug/train/progress.h>
#include <daug/train/trainer.h>

#include <daug/checkpoint.h>
#include <daug/error.h>

#include "sync_counter.h"
#include "test_support.h"

#include <ATen/ATen.h>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

using namespace daug;
using namespace daug::train;

namespace {

// y = x·W + b fitted to a fixed target map, data drawn from the global RNG (so resume must restore/reseed it).
class TinyRegression : public Trainable {
 public:
  TinyRegression() {
    at::manual_seed(7);
    w_ = at::randn({4, 2}).requires_grad_(true);
    b_ = at::zeros({2}).requires_grad_(true);
    buf_ = at::ones({3});
  }
  std::vector<at::Tensor> parameters() override { return {w_, b_}; }
  NamedTensors state() override { return {{"w", w_}, {"b", b_}, {"buf", buf_}}; }
  void load_state(const NamedTensors& s) override { copy_state_checked(state(), s, "tiny"); }
  void set_training(bool) override {}
  StepOutput loss(int64_t n) {
    at::Tensor x = at::randn({n, 4});
    at::Tensor target = x.matmul(at::arange(8, at::kFloat).view({4, 2}) / 8.0);
    at::Tensor l = (x.matmul(w_) + b_ - target).pow(2).mean();
    return {l, {{"half", 0.5 * l.detach()}}};
  }
  at::Tensor w_, b_, buf_;
};

// train_classifier/train_diffusion style: per-step reseeding, mix order, linear anneal, EMA, checkpoint every 3.
TrainerOptions reseeding(const std::filesystem::path& dir) {
  TrainerOptions o;
  o.what = "tiny";
  o.dataset_size = 10;
  o.batch_size = 3;
  o.steps = 8;
  o.lr = 0.05;
  o.adamw.weight_decay = 0.01;
  o.schedule = {Schedule::linear_per_step, 0};
  o.ema_rate = 0.9;
  o.checkpoint_every = 3;
  o.seed = 11;
  o.reseed_each_step = true;
  o.log_every_s = 1e9;
  o.checkpoint_path = dir / "checkpoint.safetensors";
  o.losses_path = dir / "losses.csv";
  return o;
}

// train_clip style: no reseeding (the RNG state is checkpointed), linear order, cosine warm-up, clipping, decay
// flags, a checkpoint at each epoch end, partial last batch.
TrainerOptions rng_carrying(const std::filesystem::path& dir) {
  TrainerOptions o;
  o.what = "tiny_clip";
  o.dataset_size = 10;
  o.batch_size = 4;
  o.drop_last = false;
  o.epochs = 3;
  o.lr = 0.05;
  o.adamw.weight_decay = 0.1;
  o.decay = {true, false};
  o.schedule = {Schedule::cosine_warmup, 2};
  o.grad_clip = 0.5;
  o.seed = 3;
  o.seed_policy = SeedPolicy::linear;
  o.checkpoint_each_epoch = true;
  o.log_every_s = 1e9;
  o.checkpoint_path = dir / "ck.safetensors";
  o.losses_path = dir / "l.csv";
  return o;
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Two losses.csv files hold the same run: every column but elapsed_s (wall time) is equal.
void expect_same_losses(const std::filesystem::path& a, const std::filesystem::path& b) {
  for (const char* c : {"step", "epoch", "lr", "loss", "grad_norm", "half"}) {
    EXPECT_EQ(read_column(a, c), read_column(b, c)) << c;
    EXPECT_FALSE(read_column(a, c).empty()) << c;
  }
}

bool bit_equal(const at::Tensor& a, const at::Tensor& b) { return a.sizes() == b.sizes() && a.equal(b); }

}  // namespace

TEST(Trainer, LengthFromEpochsStepsAndMaxSteps) {
  daug::testing::TempDir d;
  TinyRegression m;
  auto o = reseeding(d.path());
  EXPECT_EQ(Trainer(m, o).total_steps(), 8);
  o.steps = 0;
  o.epochs = 2;
  EXPECT_EQ(Trainer(m, o).total_steps(), 6);  // 2 epochs × floor(10/3)
  o.max_steps = 4;
  EXPECT_EQ(Trainer(m, o).total_steps(), 4);
  o.drop_last = false;
  o.max_steps = 0;
  EXPECT_EQ(Trainer(m, o).total_steps(), 8);  // 2 × ⌈10/3⌉
  o.epochs = 0;
  EXPECT_THROW(Trainer(m, o), daug::ConfigError);
  o.epochs = 1;
  o.dataset_size = 0;
  daug::testing::expect_error_contains([&] { Trainer(m, o); }, {"no items"});
}

TEST(Trainer, ReseedingRunLearnsAndResumesBitIdentically) {
  daug::testing::TempDir d1, d2;
  TinyRegression full;
  Trainer t1(full, reseeding(d1.path()));
  auto r1 = t1.run([&](const std::vector<int64_t>& b, int64_t) { return full.loss(static_cast<int64_t>(b.size())); });
  EXPECT_EQ(r1.steps_run, 8);
  EXPECT_LT(r1.last_loss, r1.first_loss);

  {  // interrupted after 5 steps (checkpoint written at the stop), then resumed in a fresh model object
    TinyRegression part;
    auto o = reseeding(d2.path());
    o.stop_after = 5;
    auto r = Trainer(part, o).run([&](const std::vector<int64_t>& b, int64_t) {
      return part.loss(static_cast<int64_t>(b.size()));
    });
    EXPECT_EQ(r.steps_run, 5);
    EXPECT_EQ(load_safetensors(d2 / "checkpoint.safetensors").metadata.at("complete"), "false");
  }
  TinyRegression resumed;
  auto r2 = Trainer(resumed, reseeding(d2.path())).run([&](const std::vector<int64_t>& b, int64_t) {
    return resumed.loss(static_cast<int64_t>(b.size()));
  });
  EXPECT_EQ(r2.resumed_from, 5);
  EXPECT_EQ(r2.steps_run, 3);
  EXPECT_TRUE(bit_equal(full.w_.detach(), resumed.w_.detach()));
  EXPECT_TRUE(bit_equal(full.b_.detach(), resumed.b_.detach()));
  EXPECT_TRUE(bit_equal(r1.final_ema[0].second, r2.final_ema[0].second));
  expect_same_losses(d1 / "losses.csv", d2 / "losses.csv");
  EXPECT_EQ(read_losses(d2 / "losses.csv").size(), 8u);
  EXPECT_EQ(r1.mean_last_loss, r2.mean_last_loss);
}

TEST(Trainer, RngCarryingRunResumesAfterACrashBitIdentically) {
  daug::testing::TempDir d1, d2;
  TinyRegression full;
  Trainer t1(full, rng_carrying(d1.path()));
  EXPECT_EQ(t1.steps_per_epoch(), 3);  // 4 + 4 + 2
  auto r1 = t1.run([&](const std::vector<int64_t>& b, int64_t) { return full.loss(static_cast<int64_t>(b.size())); });
  EXPECT_EQ(r1.steps_run, 9);
  {  // crashes during step 7 (epoch 2): the last checkpoint is the end of epoch 1 (step 6)
    TinyRegression part;
    Trainer t(part, rng_carrying(d2.path()));
    EXPECT_THROW(t.run([&](const std::vector<int64_t>& b, int64_t s) {
      if (s == 7) throw daug::Error("simulated crash");
      return part.loss(static_cast<int64_t>(b.size()));
    }),
                 daug::Error);
    EXPECT_EQ(load_safetensors(d2 / "ck.safetensors").metadata.at("step"), "6");
  }
  at::manual_seed(999);  // a fresh process has another RNG state: the checkpoint must restore it
  TinyRegression resumed;
  auto r2 = Trainer(resumed, rng_carrying(d2.path())).run([&](const std::vector<int64_t>& b, int64_t) {
    return resumed.loss(static_cast<int64_t>(b.size()));
  });
  EXPECT_EQ(r2.resumed_from, 6);
  EXPECT_TRUE(bit_equal(full.w_.detach(), resumed.w_.detach()));
  EXPECT_TRUE(bit_equal(full.b_.detach(), resumed.b_.detach()));
  expect_same_losses(d1 / "l.csv", d2 / "l.csv");
}

TEST(Trainer, CheckpointLayoutAndRoundTrip) {
  daug::testing::TempDir d;
  TinyRegression m;
  auto o = reseeding(d.path());
  o.metadata = {{"backbone", "tiny(4x2)"}};
  Trainer t(m, o);
  auto r = t.run([&](const std::vector<int64_t>& b, int64_t) { return m.loss(static_cast<int64_t>(b.size())); });
  auto f = load_safetensors(d / "checkpoint.safetensors");
  std::set<std::string> keys;
  for (const auto& [k, v] : f.tensors) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"model.w", "model.b", "model.buf", "optim.step", "optim.exp_avg.0",
                                         "optim.exp_avg_sq.0", "optim.exp_avg.1", "optim.exp_avg_sq.1", "ema.0",
                                         "ema.1", "rng.cpu"}));
  EXPECT_EQ(f.metadata.at("step"), "8");
  EXPECT_EQ(f.metadata.at("total_steps"), "8");
  EXPECT_EQ(f.metadata.at("seed"), "11");
  EXPECT_EQ(f.metadata.at("stage"), "tiny");
  EXPECT_EQ(f.metadata.at("complete"), "true");
  EXPECT_EQ(f.metadata.at("backbone"), "tiny(4x2)");

  auto ck = load_checkpoint(d / "checkpoint.safetensors");
  EXPECT_EQ(ck.info.step, 8);
  EXPECT_TRUE(ck.info.complete);
  EXPECT_EQ(ck.info.extra.at("backbone"), "tiny(4x2)");
  EXPECT_EQ(model_state(f.tensors).size(), 3u);
  TinyRegression other;
  other.load_state(ck.model);
  EXPECT_TRUE(bit_equal(other.w_.detach(), m.w_.detach()));
  AdamW opt(other.parameters(), {});
  opt.load_state(ck.state, "ck");
  EXPECT_EQ(opt.steps(), 8);
  EXPECT_TRUE(bit_equal(opt.state()[1].second, t.optimizer().state()[1].second));

  // Resuming a finished run runs nothing and leaves the weights as they are.
  TinyRegression again;
  auto r2 = Trainer(again, o).run([&](const std::vector<int64_t>& b, int64_t) {
    return again.loss(static_cast<int64_t>(b.size()));
  });
  EXPECT_EQ(r2.steps_run, 0);
  EXPECT_TRUE(bit_equal(again.w_.detach(), m.w_.detach()));
  EXPECT_EQ(r2.last_loss, r.last_loss);
}

TEST(Trainer, TruncatedOrForeignCheckpointsAreDataErrors) {
  daug::testing::TempDir d;
  TinyRegression m;
  auto o = reseeding(d.path());
  o.stop_after = 2;
  Trainer(m, o).run([&](const std::vector<int64_t>& b, int64_t) { return m.loss(static_cast<int64_t>(b.size())); });
  const auto ck = d / "checkpoint.safetensors";
  const std::string bytes = read(ck);
  auto fn = [&](TinyRegression& x) {
    return [&x](const std::vector<int64_t>& b, int64_t) { return x.loss(static_cast<int64_t>(b.size())); };
  };

  // Another run length, another stage.
  auto o8 = reseeding(d.path());
  o8.steps = 20;
  TinyRegression a;
  daug::testing::expect_error_contains([&] { Trainer(a, o8).run(fn(a)); },
                                       {"checkpoint.safetensors", "total_steps", "20"});
  auto other = reseeding(d.path());
  other.what = "train_diffusion";
  daug::testing::expect_error_contains([&] { Trainer(a, other).run(fn(a)); },
                                       {"checkpoint.safetensors", "'stage'", "tiny", "train_diffusion"});
  // Another model: the model's load_state error, prefixed with the file.
  auto no_ema = reseeding(d.path());
  no_ema.ema_rate = 0;
  TinyRegression c;
  c.w_ = at::zeros({5, 2}).requires_grad_(true);
  daug::testing::expect_error_contains([&] { Trainer(c, no_ema).run(fn(c)); }, {"checkpoint.safetensors", "w"});
  // A file with the layout but without optimizer state.
  {
    auto f = load_safetensors(ck);
    NamedTensors kept;
    for (auto& [k, v] : f.tensors)
      if (k.rfind("optim.exp_avg_sq.1", 0) != 0) kept.emplace_back(k, v);
    save_safetensors(ck, kept, f.metadata);
    daug::testing::expect_error_contains([&] { Trainer(a, reseeding(d.path())).run(fn(a)); },
                                         {"checkpoint.safetensors", "optim.exp_avg_sq.1"});
  }
  // Seed metadata that std::stoull used to read partly ("12abc" → 12) or wrap ("-1" → 2^64 - 1).
  for (const char* bad : {"12abc", "-1", "", "99999999999999999999999"}) {
    std::ofstream(ck, std::ios::binary | std::ios::trunc) << bytes;
    auto f = load_safetensors(ck);
    f.metadata["seed"] = bad;
    save_safetensors(ck, f.tensors, f.metadata);
    daug::testing::expect_error_contains(
        [&] { load_checkpoint(ck); },
        {"checkpoint.safetensors", "'seed' must be a non-negative integer", "'" + std::string(bad) + "'"});
  }
  // Truncated at several points: always a DataError naming the file, never a crash.
  for (size_t cut : {size_t{0}, size_t{5}, size_t{9}, bytes.size() / 2, bytes.size() - 1}) {
    {
      std::ofstream out(ck, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(cut));
    }
    TinyRegression x;
    try {
      Trainer(x, reseeding(d.path())).run(fn(x));
      ADD_FAILURE() << "a checkpoint truncated to " << cut << " bytes was accepted";
    } catch (const daug::DataError& e) {
      EXPECT_NE(std::string(e.what()).find("checkpoint.safetensors"), std::string::npos) << e.what();
    }
  }
  // A foreign safetensors file (weights only, no training metadata).
  save_safetensors(ck, {{"w", at::zeros({4, 2})}});
  TinyRegression y;
  daug::testing::expect_error_contains([&] { Trainer(y, reseeding(d.path())).run(fn(y)); },
                                       {"checkpoint.safetensors", "missing metadata key 'step'"});
}

TEST(Trainer, LossesCsvColumnsClippingAndHooks) {
  daug::testing::TempDir d;
  TinyRegression m;
  auto o = rng_carrying(d.path());
  o.grad_clip = 1e-3;  // always clipping
  Trainer t(m, o);
  int hook_calls = 0;
  std::vector<double> clipped_norms;
  t.after_backward.push_back([&](Trainer& tr) {
    ++hook_calls;
    EXPECT_TRUE(tr.params()[0].grad().defined());  // after backward, before clipping
  });
  auto res = t.run([&](const std::vector<int64_t>& b, int64_t) { return m.loss(static_cast<int64_t>(b.size())); });
  EXPECT_EQ(hook_calls, 9);
  double norm = 0;
  for (const auto& p : t.params()) norm += p.grad().pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(norm), 1e-3, 1e-6);  // the last step's gradient was clipped to grad_clip
  const std::string csv = read(d / "l.csv");
  EXPECT_EQ(csv.rfind("step,epoch,lr,loss,grad_norm,elapsed_s,half\n0,0,0,", 0), 0u) << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 10);
  auto losses = read_losses(d / "l.csv");
  ASSERT_EQ(losses.size(), 9u);
  EXPECT_EQ(losses.back(), res.last_loss);
  EXPECT_NEAR(res.last_step_loss, res.last_loss, 1e-5 * std::abs(res.last_loss));
}

TEST(Trainer, NanLossIsAnError) {
  daug::testing::TempDir d;
  TinyRegression m;
  daug::testing::expect_error_contains(
      [&] {
        Trainer(m, reseeding(d.path())).run([&](const std::vector<int64_t>&, int64_t) {
          auto out = m.loss(2);
          out.loss = out.loss * NAN;
          return out;
        });
      },
      {"loss became nan", "step 0"});
}

TEST(LossesCsv, KeepsFinishedRowsAndRejectsOtherFiles) {
  daug::testing::TempDir d;
  const auto p = d / "losses.csv";
  daug::testing::write_text(p, "step,epoch,lr,loss,grad_norm,elapsed_s\n0,0,1,2,3,4\n1,0,1,5,3,4\n2,0,1,6,3,4\n");
  {
    LossesCsv csv(p, 2);
    LossRow r;
    r.step = 2;
    r.loss = 7;
    csv.append(r);
  }
  EXPECT_EQ(read_losses(p), (std::vector<double>{2, 5, 7}));
  daug::testing::write_text(p, "step,epoch,loss,lr,elapsed_s\n0,0,2,1,4\n");
  daug::testing::expect_error_contains([&] { LossesCsv(p, 1); }, {"losses.csv", "header"});
  daug::testing::write_text(p, "step,epoch,lr,loss,grad_norm,elapsed_s\nx,0,1,2,3,4\n");
  daug::testing::expect_error_contains([&] { LossesCsv(p, 1); }, {"losses.csv:2", "integer step"});
  LossesCsv fresh(p, 0);  // a fresh run starts a new file
  EXPECT_TRUE(read_losses(p).empty());
}

TEST(LossesCsv, MalformedRowsNameFileLineAndWhatWasExpected) {
  // The review's probe: a line of garbage in a resumed losses.csv gave a bare "daug: error: stoll".
  daug::testing::TempDir d;
  const auto p = d / "losses.csv";
  const std::string header = "step,epoch,lr,loss,grad_norm,elapsed_s\n";
  daug::testing::write_text(p, header + "0,0,1,2,3,4\ngarbage line\n");
  daug::testing::expect_error_contains(
      [&] { LossesCsv(p, 2); }, {"losses.csv:3: the first column must be an integer step, but got 'garbage line'"});
  daug::testing::write_text(p, header + "0,0,1,2,3,4\n12abc,0,1,2,3,4\n");  // stoll would read 12
  daug::testing::expect_error_contains([&] { LossesCsv(p, 2); }, {"losses.csv:3", "'12abc'"});
  daug::testing::write_text(p, header + "0,0,1,2.5x,3,4\n");  // stod would read 2.5
  daug::testing::expect_error_contains([&] { read_losses(p); },
                                       {"losses.csv:2: column 4 (loss) must be a number, but got '2.5x'"});
  daug::testing::write_text(p, header + "0,0,1\n");
  daug::testing::expect_error_contains([&] { read_losses(p); }, {"losses.csv:2", "only 3 columns"});
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(12.34), "12.3s");
  EXPECT_EQ(format_duration(245), "4m05s");
  EXPECT_EQ(format_duration(3723), "1h02m03s");
  EXPECT_EQ(format_duration(-1), "?");
}

namespace {
// Exposes clip_gradients() on a model of many tensors of mixed sizes.
class ManyParams : public Trainable {
 public:
  ManyParams() {
    at::manual_seed(5);
    for (int i = 0; i < 40; ++i) p_.push_back(at::randn({1 + (i * 7) % 13, 1 + i % 5}).requires_grad_(true));
  }
  std::vector<at::Tensor> parameters() override { return p_; }
  NamedTensors state() override { return {}; }
  void load_state(const NamedTensors&) override {}
  void set_training(bool) override {}
  std::vector<at::Tensor> p_;
};
struct ClipProbe : Trainer {
  using Trainer::Trainer;
  using Trainer::clip_gradients;
};
}  // namespace

TEST(Trainer, ClipGradientsOnTheDeviceIsTheHostRuleBitForBit) {
  // The former host code: Σ (‖g_i‖² as float, read as double) in parameter order, sqrt, and g·f with
  // f = max / (norm + 1e-6) only when norm > max. The device version must give the same norm and the same
  // gradients, bit for bit, including at the boundary norm == max (no clipping).
  daug::testing::TempDir d;
  ManyParams m;
  for (double scale : {0.0, 1.0, 1e6}) {  // 0: "max" is the exact norm, so no clipping
    for (size_t i = 0; i < m.p_.size(); ++i) m.p_[i].mutable_grad() = at::randn(m.p_[i].sizes()) * (1.0 + i);
    double host = 0;
    for (const auto& p : m.p_) host += p.grad().pow(2).sum().item<double>();
    host = std::sqrt(host);
    TrainerOptions o = rng_carrying(d.path());
    o.decay = {};
    o.grad_clip = scale == 0.0 ? host : host / scale * 0.999;
    const bool clips = host > o.grad_clip;
    EXPECT_EQ(clips, scale != 0.0);
    std::vector<at::Tensor> want;
    for (const auto& p : m.p_) want.push_back(clips ? p.grad().mul(o.grad_clip / (host + 1e-6)) : p.grad().clone());
    ClipProbe t(m, o);
    daug::testing::SyncCounter c;
    const at::Tensor norm = t.clip_gradients();
    EXPECT_EQ(c.total(), 0) << c.summary();
    EXPECT_EQ(norm.scalar_type(), at::kDouble);
    EXPECT_EQ(norm.item<double>(), host) << "scale " << scale;
    for (size_t i = 0; i < m.p_.size(); ++i) EXPECT_TRUE(bit_equal(m.p_[i].grad(), want[i])) << i << " scale " << scale;
  }
}

TEST(Trainer, ReadsStepValuesEveryNStepsWithoutHostSyncsAndTheSameRows) {
  // read_every_steps only changes when the per-step values come back to the host: the rows are the same, and the
  // steps in between make no host sync (counted from inside the step function: step k+1 starts with as many
  // syncs as step k).
  daug::testing::TempDir a, b;
  std::vector<int64_t> at_step;
  {
    TinyRegression m;
    auto o = rng_carrying(a.path());
    o.read_every_steps = 1;
    Trainer(m, o).run([&](const std::vector<int64_t>& bt, int64_t) { return m.loss(static_cast<int64_t>(bt.size())); });
  }
  TinyRegression m;
  auto o = rng_carrying(b.path());
  o.read_every_steps = 1000;
  o.checkpoint_each_epoch = false;
  daug::testing::SyncCounter c;
  auto res = Trainer(m, o).run([&](const std::vector<int64_t>& bt, int64_t) {
    at_step.push_back(c.total());
    return m.loss(static_cast<int64_t>(bt.size()));
  });
  expect_same_losses(a / "l.csv", b / "l.csv");
  ASSERT_EQ(at_step.size(), 9u);
  for (size_t i = 1; i < at_step.size(); ++i) EXPECT_EQ(at_step[i], at_step[0]) << "step " << i << ": " << c.summary();
  EXPECT_NEAR(res.last_step_loss, read_losses(b / "l.csv").back(), 1e-5 * std::abs(res.last_step_loss));
}

TEST(Trainer, NanLossLaterInABlockNamesItsStepAndWritesNoLaterCheckpoint) {
  daug::testing::TempDir d;
  TinyRegression m;
  auto o = reseeding(d.path());  // checkpoint every 3 steps
  o.read_every_steps = 100;
  daug::testing::expect_error_contains(
      [&] {
        Trainer(m, o).run([&](const std::vector<int64_t>&, int64_t step) {
          auto out = m.loss(2);
          if (step == 4) out.loss = out.loss * NAN;
          return out;
        });
      },
      {"loss became nan", "at step 4"});
  EXPECT_EQ(load_checkpoint(d / "checkpoint.safetensors").info.step, 3);  // the step-6 checkpoint was never written
  EXPECT_EQ(read_losses(d / "losses.csv").size(), 4u);                   // rows of steps 0..3
}
