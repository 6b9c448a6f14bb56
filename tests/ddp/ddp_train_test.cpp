// Data-parallel training across real processes (issue 11): `daug run` started as 2 ranks with the torchrun
// environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; a free port; Gloo on localhost) trains, with
// the same config (batch_size is the global batch: 2 images per rank), the weights 1 process trains, for the three
// trainers; every rank ends with bitwise the same state (the Trainer compares the ranks' hashes at the end: a
// mismatch fails the run); a 2-rank run killed mid-training and restarted equals an uninterrupted one bit for bit.
// The measured differences are printed as "[ measured ]" lines.
//
// All ranks share runs_dir and cache_dir, as a real launch does (rank 0 owns the run directory, the cache decisions
// and the stage locks; ranks > 0 log to <run dir>/rank<R>.log). That only rank 0 writes the trainers' files is
// DataParallel.*'s (libs/train). The results are read from rank 0's run.
#include <daug/checkpoint.h>

#include <gtest/gtest.h>

#include "test_support.h"

#include <ATen/ATen.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

extern char** environ;

namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Where rank r's runs and cache directories are in a launch under `dir`: shared by all ranks.
fs::path rank_root(const fs::path& dir, int /*r*/) { return dir; }

struct Launch {
  fs::path dir;
  std::vector<int> status;  ///< waitpid status per rank
  bool killed = false;      ///< stopped by `stop_when` (or the time limit)
  /// Rank r's console output and its rank<r>.log files, if any.
  std::string log(int r) const {
    std::string s = read_text(dir / ("rank" + std::to_string(r)) / "out.txt");
    const fs::path runs = rank_root(dir, r) / "runs";
    if (fs::exists(runs))
      for (const auto& e : fs::recursive_directory_iterator(runs))
        if (e.path().filename() == "rank" + std::to_string(r) + ".log") s += read_text(e.path());
    return s;
  }
  bool ok() const {
    for (int s : status)
      if (!WIFEXITED(s) || WEXITSTATUS(s) != 0) return false;
    return !killed;
  }
  std::string logs() const {
    std::string s;
    for (size_t r = 0; r < status.size(); ++r) s += "---- rank " + std::to_string(r) + "\n" + log(static_cast<int>(r));
    return s;
  }
};

/// Runs `daug run <config> --stage <stage> <sets>` as `world` ranks (world = 1: a plain process, no launch
/// environment), rank r in dir/rank<r> with its own runs and cache directory. Every rank is SIGKILLed when
/// `stop_when()` becomes true (then `killed`), or after `limit_s` (a test failure).
Launch run_daug(int world, const fs::path& dir, const std::string& config, const std::string& stage,
                const std::vector<std::string>& sets, const std::function<bool()>& stop_when = {},
                double limit_s = 300) {
  Launch l;
  l.dir = dir;
  const int port = daug::testing::free_local_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const fs::path rd = dir / ("rank" + std::to_string(r));
    fs::create_directories(rd);
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    if (world > 1)
      for (const std::string& kv :
           {"RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(world), "LOCAL_RANK=" + std::to_string(r),
            "LOCAL_WORLD_SIZE=" + std::to_string(world), std::string("MASTER_ADDR=127.0.0.1"),
            "MASTER_PORT=" + std::to_string(port), std::string("DAUG_DIST_TIMEOUT_S=60")})
        env.push_back(kv);
    const fs::path root = rank_root(dir, r);
    std::vector<std::string> args{DAUG_CLI,
                                  "run",
                                  std::string(DAUG_SOURCE_DIR) + "/configs/" + config,
                                  "--stage",
                                  stage,
                                  "--set",
                                  "run.runs_dir=\"" + (root / "runs").string() + "\"",
                                  "--set",
                                  "run.cache_dir=\"" + (root / "cache").string() + "\""};
    for (const auto& s : sets) args.insert(args.end(), {"--set", s});
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string out = (rd / "out.txt").string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&fa);
    pids.push_back(pid);
  }
  l.status.assign(pids.size(), -1);
  const auto t0 = std::chrono::steady_clock::now();
  size_t left = pids.size();
  while (left > 0) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool stop = (stop_when && stop_when()) || el > limit_s;
    if (stop && !l.killed) {
      l.killed = true;
      if (el > limit_s) ADD_FAILURE() << "daug run still ran after " << limit_s << " s: killed";
      for (size_t r = 0; r < pids.size(); ++r)
        if (l.status[r] == -1) ::kill(pids[r], SIGKILL);
    }
    for (size_t r = 0; r < pids.size(); ++r) {
      int st = 0;
      if (l.status[r] == -1 && ::waitpid(pids[r], &st, WNOHANG) == pids[r]) {
        l.status[r] = st;
        --left;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return l;
}

/// rank r's output directory of stage `table` (its cache directory's "<table>-<key>"), or "" if there is none.
fs::path stage_dir(const Launch& l, int r, const std::string& table) {
  const fs::path cache = rank_root(l.dir, r) / "cache";
  if (!fs::exists(cache)) return {};
  for (const auto& e : fs::directory_iterator(cache))
    if (e.path().filename().string().rfind(table + "-", 0) == 0) return e.path();
  return {};
}

/// How far the tensors of `a` are from those of `b` (only names starting with `prefix`).
struct Diff {
  double model = 0;        ///< max |a − b| over all the tensors / max |b| over all the tensors: the pass criterion
  double worst = 0;        ///< max over the tensors of max|a − b| / max|b| of that tensor (informative)
  std::string worst_name;  ///< ... and which tensor it is
  double key_bias = 0;     ///< max |a − b| of the attention key biases (not in `model`)
  std::string str() const {
    char buf[320];
    std::snprintf(buf, sizeof buf, "%.3g (per tensor at most %.3g, in %s; attention key biases %.3g absolute)", model,
                  worst, worst_name.c_str(), key_bias);
    return buf;
  }
};
// Per tensor, the relative difference is not a meaningful criterion for parameters whose gradient is analytically
// zero or nearly so (zero-initialised output layers after a few steps; attention key biases, to which softmax is
// invariant): Adam divides their rounding-noise gradients by √v and moves them by up to lr either way, whatever the
// summation order (one process with accumulate = 2 instead of 1 moves CLIP's key biases by the same 1.4e-4). The
// whole state's relative difference is the criterion, without the key biases (the middle third of each
// `attn.in_proj_bias`, whose difference is `key_bias`: reported, not checked).
Diff diff(const fs::path& a, const fs::path& b, const std::string& prefix = "") {
  const auto ta = daug::load_safetensors(a), tb = daug::load_safetensors(b);
  Diff out;
  double max_abs = 0, max_scale = 0;
  size_t n = 0;
  for (const auto& [name, t] : tb.tensors) {
    if (name.rfind(prefix, 0) != 0) continue;
    const at::Tensor* other = nullptr;
    for (const auto& [k, v] : ta.tensors)
      if (k == name) other = &v;
    EXPECT_NE(other, nullptr) << name << " missing in " << a;
    if (!other || t.numel() == 0) continue;
    ++n;
    const double scale = t.abs().max().item<double>();
    const at::Tensor delta = (other->to(at::kDouble) - t.to(at::kDouble)).abs();
    const double d = delta.max().item<double>();
    const size_t len = name.size();
    if (len >= 17 && name.compare(len - 17, 17, "attn.in_proj_bias") == 0) {
      const int64_t third = t.numel() / 3;
      out.key_bias = std::max(out.key_bias, delta.narrow(0, third, third).max().item<double>());
      max_abs = std::max({max_abs, delta.narrow(0, 0, third).max().item<double>(),
                          delta.narrow(0, 2 * third, third).max().item<double>()});
    } else {
      max_abs = std::max(max_abs, d);
    }
    max_scale = std::max(max_scale, scale);
    const double rel = scale > 0 ? d / scale : d;
    if (rel >= out.worst) out.worst = rel, out.worst_name = name;
  }
  EXPECT_GT(n, 0u) << "no tensors compared in " << b;
  out.model = max_scale > 0 ? max_abs / max_scale : max_abs;
  return out;
}

/// Column `loss` of a losses.csv.
std::vector<double> losses(const fs::path& csv) {
  std::ifstream in(csv);
  std::string line;
  std::vector<double> out;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("step,epoch,lr,loss,", 0), 0u) << csv;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    for (int i = 0; i < 4; ++i) std::getline(ss, cell, ',');
    out.push_back(std::stod(cell));
  }
  return out;
}

/// The logged (global) loss of every step agrees to the 6 digits losses.csv keeps.
void expect_same_losses(const fs::path& a, const fs::path& b) {
  const auto la = losses(a), lb = losses(b);
  ASSERT_EQ(la.size(), lb.size()) << a << " vs " << b;
  ASSERT_FALSE(la.empty());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(lb[i], la[i], 2e-5 * std::abs(la[i])) << "step " << i;
}

bool bitwise_equal(const fs::path& a, const fs::path& b) {
  const auto ta = daug::load_safetensors(a), tb = daug::load_safetensors(b);
  if (ta.tensors.size() != tb.tensors.size()) return false;
  for (size_t i = 0; i < ta.tensors.size(); ++i)
    if (ta.tensors[i].first != tb.tensors[i].first || !ta.tensors[i].second.equal(tb.tensors[i].second)) return false;
  return true;
}

/// 1 process and 2 ranks on the same config; checks both succeed, the ranks' final states were identical, and only
/// rank 0 wrote result files. Returns {1-process stage dir, rank 0's stage dir}.
std::pair<fs::path, fs::path> one_vs_two(const fs::path& root, const std::string& config, const std::string& stage,
                                         const std::vector<std::string>& sets,
                                         const std::vector<std::string>& sets_one = {}) {
  std::vector<std::string> one_sets = sets;
  one_sets.insert(one_sets.end(), sets_one.begin(), sets_one.end());
  const Launch one = run_daug(1, root / "one", config, stage, one_sets);
  EXPECT_TRUE(one.ok()) << one.logs();
  const Launch two = run_daug(2, root / "two", config, stage, sets);
  EXPECT_TRUE(two.ok()) << two.logs();
  EXPECT_NE(two.log(0).find("state identical on all 2 ranks"), std::string::npos) << two.logs();
  // Each rank trained on its half of every batch (the rest of the test shows that the halves made the whole).
  EXPECT_NE(two.log(0).find("rank 0 of 2 trains on items [0, 2) of each batch of 4"), std::string::npos) << two.logs();
  EXPECT_NE(two.log(1).find("rank 1 of 2 trains on items [2, 4) of each batch of 4"), std::string::npos) << two.logs();
  return {stage_dir(one, 0, stage), stage_dir(two, 0, stage)};
}

const std::vector<std::string> kDiffusion{"train_diffusion.steps=3", "train_diffusion.batch_size=4"};

}  // namespace

TEST(DdpTrain, DiffusionTwoRanksTrainTheWeightsOfOneProcess) {
  daug::testing::TempDir tmp;
  auto [one, two] = one_vs_two(tmp.path(), "smoke/heatmaps_nih.toml", "train_diffusion", kDiffusion);
  ASSERT_TRUE(fs::exists(two / "model.safetensors"));
  const Diff raw = diff(two / "model.safetensors", one / "model.safetensors");
  const Diff ema = diff(two / "ema.safetensors", one / "ema.safetensors");
  std::printf(
      "[ measured ] train_diffusion 2 ranks x 2 vs 1 process x 4, 3 steps: relative difference %s (weights), "
      "%s (EMA)\n",
      raw.str().c_str(), ema.str().c_str());
  EXPECT_LT(raw.model, 1e-5);
  EXPECT_LT(ema.model, 1e-5);
  expect_same_losses(one / "losses.csv", two / "losses.csv");
}

TEST(DdpTrain, ClassifierTwoRanksTrainTheWeightsOfOneProcess) {
  daug::testing::TempDir tmp;
  auto [one, two] = one_vs_two(tmp.path(), "smoke/heatmaps_nih.toml", "train_classifier",
                               {"train_classifier.steps=3", "train_classifier.batch_size=4"});
  ASSERT_TRUE(fs::exists(two / "model.safetensors"));
  const Diff d = diff(two / "model.safetensors", one / "model.safetensors");
  std::printf("[ measured ] train_classifier 2 ranks x 2 vs 1 process x 4, 3 steps: relative difference %s\n",
              d.str().c_str());
  EXPECT_LT(d.model, 1e-5);
  expect_same_losses(one / "losses.csv", two / "losses.csv");
  EXPECT_TRUE(fs::exists(two / "metrics.json"));
}

// gather = "local": per-rank contrastive groups of 2 = one process with contrastive_group = 2; gather = "global":
// the loss over the whole gathered batch = one process with one group of 4 (contrastive_group = 0).
TEST(DdpTrain, ClipTwoRanksTrainTheWeightsOfOneProcessLocallyAndWithGlobalGather) {
  daug::testing::TempDir tmp;
  const std::vector<std::string> base{"train_clip.composer=\"\"", "train_clip.batch_size=4", "train_clip.max_steps=2"};
  for (const std::string gather : {"local", "global"}) {
    auto sets = base;
    sets.push_back("train_clip.gather=\"" + gather + "\"");
    sets.push_back(gather == "local" ? "train_clip.contrastive_group=2" : "train_clip.contrastive_group=0");
    auto [one, two] = one_vs_two(tmp.path() / gather, "smoke/clip_nih.toml", "train_clip", sets);
    ASSERT_TRUE(fs::exists(two / "checkpoint.safetensors")) << gather;
    const Diff d = diff(two / "checkpoint.safetensors", one / "checkpoint.safetensors", "model.");
    std::printf("[ measured ] train_clip gather=%s 2 ranks x 2 vs 1 process x 4, 2 steps: relative difference %s\n",
                gather.c_str(), d.str().c_str());
    EXPECT_LT(d.model, 1e-5) << gather;
    expect_same_losses(one / "losses.csv", two / "losses.csv");
  }
}

// A 2-rank run SIGKILLed (both ranks) once rank 0 has written a checkpoint, then restarted: rank 0 resumes from its
// checkpoint, rank 1 (which reads none) takes rank 0's state, and the weights equal an uninterrupted 2-rank run's
// bit for bit.
TEST(DdpTrain, AKilledAndRestartedTwoRankRunEqualsAnUninterruptedOne) {
  daug::testing::TempDir tmp;
  const std::vector<std::string> sets{"train_diffusion.steps=24", "train_diffusion.batch_size=4",
                                      "train_diffusion.checkpoint_every=1"};
  const Launch full = run_daug(2, tmp.path() / "full", "smoke/heatmaps_nih.toml", "train_diffusion", sets);
  ASSERT_TRUE(full.ok()) << full.logs();
  const fs::path run = tmp.path() / "killed";
  const Launch killed = run_daug(2, run, "smoke/heatmaps_nih.toml", "train_diffusion", sets, [&] {
    const fs::path d = stage_dir(Launch{run, {}, false}, 0, "train_diffusion");
    return !d.empty() && fs::exists(d / "checkpoint.safetensors");
  });
  ASSERT_TRUE(killed.killed) << "the run ended before a checkpoint was seen\n" << killed.logs();
  const fs::path d0 = stage_dir(killed, 0, "train_diffusion");
  ASSERT_FALSE(fs::exists(d0 / "model.safetensors")) << "killed after the end: nothing to resume";
  const Launch resumed = run_daug(2, run, "smoke/heatmaps_nih.toml", "train_diffusion", sets);
  ASSERT_TRUE(resumed.ok()) << resumed.logs();
  EXPECT_NE(resumed.log(0).find("resuming from"), std::string::npos) << resumed.logs();
  EXPECT_NE(resumed.log(1).find("with rank 0's state"), std::string::npos) << resumed.logs();
  const fs::path f0 = stage_dir(full, 0, "train_diffusion");
  EXPECT_TRUE(bitwise_equal(d0 / "model.safetensors", f0 / "model.safetensors"));
  EXPECT_TRUE(bitwise_equal(d0 / "ema.safetensors", f0 / "ema.safetensors"));
}
