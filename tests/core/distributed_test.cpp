// A distributed `daug run` end to end (issue 11 items 1 and 5): the real `daug` binary on 2 local ranks over Gloo,
// started by `daug launch` / `daug run --nproc` or by hand with the torchrun environment (RANK, WORLD_SIZE, ...).
// Every child process has a deadline (it is killed there and the test fails), and every port is a free one.
#include "test_support.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kDaug = DAUG_EXE;
const std::string kFixtures = std::string(DAUG_FIXTURE_DIR) + "/good";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t count_lines(const fs::path& p) {
  const std::string t = slurp(p);
  return static_cast<size_t>(std::count(t.begin(), t.end(), '\n'));
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

/// One child process (`daug ...`) with its stdout+stderr in a file; SIGKILLed if still running when destroyed.
class Proc {
 public:
  Proc(std::vector<std::string> args, const std::vector<std::string>& env_add, const fs::path& cwd, fs::path log)
      : log_(std::move(log)) {
    // Built before fork: the child only calls async-signal-safe functions.
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string kv(*e), key = kv.substr(0, kv.find('='));
      if (key != "RANK" && key != "WORLD_SIZE" && key != "LOCAL_RANK" && key != "LOCAL_WORLD_SIZE" &&
          key != "MASTER_ADDR" && key != "MASTER_PORT" && key != "DAUG_DIST_TIMEOUT_S" && key != "OMP_NUM_THREADS")
        env.push_back(kv);
    }
    env.push_back("OMP_NUM_THREADS=1");
    env.insert(env.end(), env_add.begin(), env_add.end());
    args.insert(args.begin(), kDaug);
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string cwd_s = cwd.string(), log_s = log_.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_s.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || ::chdir(cwd_s.c_str()) != 0) ::_exit(126);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    EXPECT_GT(pid_, 0) << "fork failed";
  }
  ~Proc() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }
  /// Waits until the process ends or `seconds` pass (then kills it: the test fails on the nullopt).
  std::optional<int> wait(double seconds) {
    const auto until =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (!status_) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = st;
        break;
      }
      if (Clock::now() >= until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        return std::nullopt;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return status_;
  }
  std::string output() const { return slurp(log_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  fs::path log_;
};

int exit_code(const std::optional<int>& st) {
  if (!st) return -1000;  // timed out
  if (WIFEXITED(*st)) return WEXITSTATUS(*st);
  return -WTERMSIG(*st);
}

/// The environment torchrun gives rank `r` of `world`.
std::vector<std::string> rank_env(int r, int world, int port, double timeout_s) {
  return {"RANK=" + std::to_string(r),
          "WORLD_SIZE=" + std::to_string(world),
          "LOCAL_RANK=" + std::to_string(r),
          "LOCAL_WORLD_SIZE=" + std::to_string(world),
          "MASTER_ADDR=127.0.0.1",
          "MASTER_PORT=" + std::to_string(port),
          "DAUG_DIST_TIMEOUT_S=" + std::to_string(timeout_s)};
}

/// Two `count` fixture stages ([second] reads [first]); `extra` is appended to [first].
std::string fixture_config(const fs::path& dir, const std::string& extra = "") {
  return "[run]\nname = \"dist\"\nstages = [\"first\", \"second\"]\nruns_dir = \"" + (dir / "runs").string() +
         "\"\ncache_dir = \"" + (dir / "cache").string() + "\"\n[first]\nplugin = \"count\"\nvalue = 1\n" + extra +
         "\n[second]\nplugin = \"count\"\nvalue = 2\nupstream = \"first\"\n[scale]\nplugin = \"scale\"\n";
}

std::vector<fs::path> entries(const fs::path& dir, const std::string& prefix = "") {
  std::vector<fs::path> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0 && e.path().filename() != "latest") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// `daug run --nproc 2`: both ranks run every stage (the fixture appends one line per run to runs.txt), rank 0 alone
// marks each complete and writes the run directory's files, rank 1 logs to rank1.log; a second launch finds both
// stages cached and no rank runs them again.
TEST(Distributed, RunNprocRunsEveryStageOnEveryRankAndRankZeroMarksThemComplete) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "p.toml", fixture_config(tmp.path()));
  {
    Proc p({"--plugin-path", kFixtures, "run", "--nproc", "2", "--timeout", "30", "p.toml"}, {}, tmp.path(),
           tmp / "out1.txt");
    ASSERT_EQ(exit_code(p.wait(120)), 0) << p.output();
    const std::string out = p.output();
    EXPECT_EQ(count_of(out, "value 21"), 1u) << "rank 0 alone prints the summary:\n" << out;
    EXPECT_NE(out.find("daug launch: starting 2 rank(s)"), std::string::npos) << out;
  }
  const auto stage_dirs = entries(tmp / "cache");
  ASSERT_EQ(stage_dirs.size(), 2u);
  for (const auto& d : stage_dirs) {
    EXPECT_TRUE(fs::exists(d / ".complete")) << d;
    EXPECT_EQ(count_lines(d / "runs.txt"), 2u) << d << ": every rank runs a stage that is not cached";
  }
  const auto runs = entries(tmp / "runs");
  ASSERT_EQ(runs.size(), 1u) << "rank 0 alone creates the run directory";
  EXPECT_TRUE(fs::exists(runs[0] / "run.log"));
  EXPECT_TRUE(fs::exists(runs[0] / "summary.md"));
  EXPECT_TRUE(fs::exists(runs[0] / "stages.txt"));
  EXPECT_FALSE(fs::exists(runs[0] / "rank0.log"));
  ASSERT_TRUE(fs::exists(runs[0] / "rank1.log"));
  EXPECT_NE(slurp(runs[0] / "rank1.log").find("stage [first] count ->"), std::string::npos)
      << slurp(runs[0] / "rank1.log");
  EXPECT_EQ(slurp(runs[0] / "run.log").find("rank1"), std::string::npos);

  Proc again({"--plugin-path", kFixtures, "run", "--nproc", "2", "--timeout", "30", "p.toml"}, {}, tmp.path(),
             tmp / "out2.txt");
  ASSERT_EQ(exit_code(again.wait(120)), 0) << again.output();
  EXPECT_NE(again.output().find("stage [second] count: cached at"), std::string::npos) << again.output();
  for (const auto& d : stage_dirs) EXPECT_EQ(count_lines(d / "runs.txt"), 2u) << d << ": cached, so no rank re-runs it";
}

// A sweep on 2 ranks: every variant runs on both ranks, and rank 0 alone writes and prints the comparison.
TEST(Distributed, SweepRunsEveryVariantOnEveryRankAndRankZeroWritesTheComparison) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "p.toml", fixture_config(tmp.path()) + "[sweep]\n\"first.value\" = [1, 3]\n");
  Proc p({"--plugin-path", kFixtures, "run", "--nproc", "2", "--timeout", "30", "p.toml"}, {}, tmp.path(),
         tmp / "out.txt");
  ASSERT_EQ(exit_code(p.wait(180)), 0) << p.output();
  const std::string out = p.output();
  EXPECT_EQ(count_of(out, "comparison: runs/sweep_p/comparison.{md,csv,json}"), 1u) << out;
  const std::string csv = slurp(tmp / "runs" / "sweep_p" / "comparison.csv");
  EXPECT_EQ(count_of(csv, ",ok,"), 2u) << csv;
  EXPECT_NE(csv.find("first.value"), std::string::npos) << csv;
  EXPECT_EQ(entries(tmp / "runs").size(), 3u) << "two run directories (one per variant) and sweep_p";
  for (const auto& d : entries(tmp / "cache", "first-")) EXPECT_EQ(count_lines(d / "runs.txt"), 2u) << d;
}

// A single-process run holds the stages' locks while a 2-rank run of the same config starts: rank 0 polls the lock
// (the other rank's collective never waits longer than a second, below the 2 s timeout), then every rank reuses
// the finished output; each stage body ran once.
TEST(Distributed, RankZeroWaitsForAnotherProcessHoldingTheStageLockWithoutTimingOut) {
  daug::testing::TempDir tmp;
  // [first] sleeps long enough for the 2-rank run to start up (seconds on a loaded machine) while it runs.
  std::string cfg = fixture_config(tmp.path(), "sleep_ms = 20000\n");
  cfg.replace(cfg.find("upstream = \"first\"\n"), 0, "sleep_ms = 3000\n");
  daug::testing::write_text(tmp / "p.toml", cfg);
  Proc single({"--plugin-path", kFixtures, "run", "p.toml"}, {}, tmp.path(), tmp / "single.txt");
  const auto until = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < until && single.output().find("stage [first] count ->") == std::string::npos)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Proc dist({"--plugin-path", kFixtures, "run", "--nproc", "2", "--timeout", "2", "p.toml"}, {}, tmp.path(),
            tmp / "dist.txt");
  EXPECT_EQ(exit_code(single.wait(120)), 0) << single.output();
  ASSERT_EQ(exit_code(dist.wait(120)), 0) << dist.output();
  const std::string out = dist.output();
  EXPECT_NE(out.find("stage [first]: another daug process is running this stage"), std::string::npos) << out;
  EXPECT_NE(out.find("stage [first] count: finished by the other process; reusing"), std::string::npos) << out;
  const auto stage_dirs = entries(tmp / "cache");
  ASSERT_EQ(stage_dirs.size(), 2u);
  for (const auto& d : stage_dirs) EXPECT_EQ(count_lines(d / "runs.txt"), 1u) << d << "\n" << out;
}

// A rank killed by a signal: the launcher names it and how it ended, the other rank ends on its own (its next
// collective fails naming rank 1) within the grace period, and the launch exits non-zero with no stage complete.
TEST(Distributed, LauncherNamesTheRankThatWasKilledAndTheOtherRankEnds) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "p.toml", fixture_config(tmp.path(), "fail_rank = 1\nfail_how = \"kill\"\n"));
  const auto t0 = Clock::now();
  Proc p(
      {"--plugin-path", kFixtures, "launch", "--nproc", "2", "--timeout", "10", "--grace", "60", "--", "run", "p.toml"},
      {}, tmp.path(), tmp / "out.txt");
  const int code = exit_code(p.wait(120));
  const std::string out = p.output();
  ASSERT_NE(code, -1000) << "the launch did not end within 120 s:\n" << out;
  EXPECT_NE(code, 0) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(daug launch: rank 1 \(pid [0-9]+\) was killed by signal 9)")))
      << out;
  // Rank 0 ended by itself (the communicator's failure detection), not by the launcher, and said which rank failed.
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(daug launch: rank 0 \(pid [0-9]+\) exited with code [1-9])")))
      << out;
  EXPECT_EQ(out.find("still running"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\[rank 0\] daug: .*rank 1)"))) << out;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 60.0) << out;
  for (const auto& d : entries(tmp / "cache")) EXPECT_FALSE(fs::exists(d / ".complete")) << d;
}

// A rank whose stage throws exits non-zero with its error (prefixed with its rank); the launch fails naming it.
TEST(Distributed, LauncherNamesTheRankWhoseStageFailed) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "p.toml", fixture_config(tmp.path(), "fail_rank = 1\n"));
  Proc p({"--plugin-path", kFixtures, "run", "--nproc", "2", "--timeout", "10", "p.toml"}, {}, tmp.path(),
         tmp / "out.txt");
  const int code = exit_code(p.wait(120));
  const std::string out = p.output();
  ASSERT_NE(code, -1000) << out;
  EXPECT_NE(code, 0) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(daug launch: rank 1 \(pid [0-9]+\) exited with code 1)"))) << out;
  EXPECT_NE(out.find("[rank 1] daug: data error: count: failing on rank 1 as configured"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\[rank 0\] daug: .*rank 1)"))) << out;
}

/// The pid of `rank` from the launcher's "daug launch: rank 0 pid 123, rank 1 pid 124" line, once it is written.
pid_t rank_pid(const Proc& launcher, int rank, double seconds) {
  const std::regex re("rank " + std::to_string(rank) + " pid ([0-9]+)");
  for (const auto until = Clock::now() + std::chrono::duration<double>(seconds); Clock::now() < until;) {
    std::smatch m;
    const std::string out = launcher.output();
    if (std::regex_search(out, m, re)) return static_cast<pid_t>(std::stol(m[1]));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it runs nothing any more).
bool gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

bool all_gone_within(const std::vector<pid_t>& pids, double seconds) {
  for (const auto until = Clock::now() + std::chrono::duration<double>(seconds); Clock::now() < until;) {
    if (std::all_of(pids.begin(), pids.end(), gone)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// SIGINT to the launcher (Ctrl-C) reaches every rank; the launch exits 128 + SIGINT with no rank left running.
TEST(Distributed, LauncherForwardsSigintToEveryRank) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "p.toml", fixture_config(tmp.path(), "sleep_ms = 60000\n"));
  Proc p({"--plugin-path", kFixtures, "run", "--nproc", "2", "--timeout", "30", "p.toml"}, {}, tmp.path(),
         tmp / "out.txt");
  const pid_t r0 = rank_pid(p, 0, 30), r1 = rank_pid(p, 1, 30);
  ASSERT_GT(r0, 0) << p.output();
  ASSERT_GT(r1, 0) << p.output();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the ranks are in the stage (or still starting up)
  ::kill(p.pid(), SIGINT);
  const int code = exit_code(p.wait(60));
  EXPECT_EQ(code, 128 + SIGINT) << p.output();
  EXPECT_NE(p.output().find("daug launch: got Interrupt; forwarding it to the ranks"), std::string::npos) << p.output();
  EXPECT_TRUE(all_gone_within({r0, r1}, 10)) << p.output();
  for (pid_t r : {r0, r1})
    if (!gone(r)) ::kill(r, SIGKILL);
}

// A launcher killed outright (SIGKILL: nothing to forward) leaves no rank behind.
TEST(Distributed, KilledLauncherLeavesNoOrphanedRanks) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "p.toml", fixture_config(tmp.path(), "sleep_ms = 60000\n"));
  Proc p({"--plugin-path", kFixtures, "run", "--nproc", "2", "--timeout", "30", "p.toml"}, {}, tmp.path(),
         tmp / "out.txt");
  const pid_t r0 = rank_pid(p, 0, 30), r1 = rank_pid(p, 1, 30);
  ASSERT_GT(r0, 0) << p.output();
  ASSERT_GT(r1, 0) << p.output();
  ::kill(p.pid(), SIGKILL);
  EXPECT_EQ(exit_code(p.wait(10)), -SIGKILL);
  EXPECT_TRUE(all_gone_within({r0, r1}, 10)) << "ranks outlived their launcher:\n" << p.output();
  for (pid_t r : {r0, r1})
    if (!gone(r)) ::kill(r, SIGKILL);  // no stray process after a failure
}

// Ranks started with different --set values: every rank stops with the same ConfigError naming the first differing
// key, before any stage is built or run (no cache or run directory).
TEST(Distributed, MismatchedConfigurationIsAnErrorOnEveryRankBeforeAnyStage) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "p.toml", fixture_config(tmp.path()));
  const int port = daug::testing::free_local_port();
  Proc r0({"--plugin-path", kFixtures, "run", "p.toml", "--set", "first.value=1"}, rank_env(0, 2, port, 20), tmp.path(),
          tmp / "r0.txt");
  Proc r1({"--plugin-path", kFixtures, "run", "p.toml", "--set", "first.value=2"}, rank_env(1, 2, port, 20), tmp.path(),
          tmp / "r1.txt");
  const int c0 = exit_code(r0.wait(90)), c1 = exit_code(r1.wait(30));
  for (const auto& [code, out] : {std::pair{c0, r0.output()}, std::pair{c1, r1.output()}}) {
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find("configuration error: rank 1's configuration differs from rank 0's (hash"), std::string::npos)
        << out;
    EXPECT_NE(out.find("[first] value = 1 on rank 0 vs value = 2 on rank 1"), std::string::npos) << out;
  }
  EXPECT_NE(r1.output().find("[rank 1] daug: configuration error"), std::string::npos) << r1.output();
  EXPECT_FALSE(fs::exists(tmp / "cache")) << "no stage may start";
  EXPECT_FALSE(fs::exists(tmp / "runs"));
}

// --shard under a distributed launch is refused on every rank (the ranks shard by themselves).
TEST(Distributed, ShardUnderADistributedLaunchIsAConfigError) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "p.toml", fixture_config(tmp.path()));
  Proc p({"--plugin-path", kFixtures, "run", "--nproc", "2", "--timeout", "20", "p.toml", "--shard", "0/2"}, {},
         tmp.path(), tmp / "out.txt");
  const int code = exit_code(p.wait(90));
  const std::string out = p.output();
  EXPECT_EQ(code, 1) << out;
  EXPECT_EQ(count_of(out, "--shard 0/2 cannot be used under a distributed launch (WORLD_SIZE = 2)"), 2u) << out;
  EXPECT_FALSE(fs::exists(tmp / "cache"));
}

// WORLD_SIZE=2 but rank 1 never starts: rank 0 gives up after the timeout, naming rank 1 and the rendezvous.
TEST(Distributed, PeerThatNeverJoinsEndsRankZeroWithinTheTimeout) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "p.toml", fixture_config(tmp.path()));
  const auto t0 = Clock::now();
  Proc r0({"--plugin-path", kFixtures, "run", "p.toml"}, rank_env(0, 2, daug::testing::free_local_port(), 3), tmp.path(), tmp / "r0.txt");
  const int code = exit_code(r0.wait(60));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::string out = r0.output();
  ASSERT_NE(code, -1000) << "rank 0 still waited after 60 s (timeout 3 s):\n" << out;
  EXPECT_EQ(code, 1) << out;
  EXPECT_GE(secs, 2.5) << out;
  EXPECT_TRUE(
      std::regex_search(out, std::regex(R"(\[rank 0\] daug: .*rank\(s\) 1 did not join the rendezvous within 3 s)")))
      << out;
  EXPECT_FALSE(fs::exists(tmp / "cache"));
}

// Training on 2 ranks, rank 1 SIGKILLed once training is under way: rank 0 exits non-zero within the timeout naming
// rank 1, and the same command again resumes from the last checkpoint and completes the stage.
TEST(Distributed, KilledRankEndsTheOtherAndTheSameCommandResumes) {
  daug::testing::TempDir tmp;
  const std::string cfg = std::string(DAUG_SOURCE_DIR) + "/configs/smoke/heatmaps_nih.toml";
  const std::vector<std::string> args{"run",     cfg,
                                      "--stage", "train_classifier",
                                      "--set",   "run.threads=1",
                                      "--set",   "run.runs_dir=\"" + (tmp / "runs").string() + "\"",
                                      "--set",   "run.cache_dir=\"" + (tmp / "cache").string() + "\"",
                                      "--set",   "train_classifier.steps=120",
                                      "--set",   "train_classifier.checkpoint_every=4"};
  {
    const int port = daug::testing::free_local_port();
    Proc r0(args, rank_env(0, 2, port, 15), tmp.path(), tmp / "a0.txt");
    Proc r1(args, rank_env(1, 2, port, 15), tmp.path(), tmp / "a1.txt");
    // Kill rank 1 once a checkpoint exists and training has gone on after it (losses.csv rows past step 4).
    const auto until = Clock::now() + std::chrono::seconds(120);
    fs::path losses;
    while (Clock::now() < until && r0.running() && r1.running()) {
      for (const auto& d : entries(tmp / "cache", "train_classifier-"))
        if (fs::exists(d / "losses.csv")) losses = d / "losses.csv";
      if (!losses.empty() && count_lines(losses) >= 8) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_FALSE(losses.empty()) << "no losses.csv after 120 s:\n" << r0.output() << r1.output();
    ASSERT_TRUE(r1.running()) << r1.output();
    ::kill(r1.pid(), SIGKILL);
    const auto killed_at = Clock::now();
    const int c0 = exit_code(r0.wait(90));
    const std::string out = r0.output();
    ASSERT_NE(c0, -1000) << "rank 0 did not end within 90 s of rank 1's death (timeout 15 s):\n" << out;
    EXPECT_EQ(c0, 1) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(\[rank 0\] daug: .*rank 1)"))) << out;
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - killed_at).count(), 45.0) << out;
    EXPECT_EQ(exit_code(r1.wait(10)), -SIGKILL);
  }
  const auto dirs = entries(tmp / "cache", "train_classifier-");
  ASSERT_EQ(dirs.size(), 1u);
  ASSERT_FALSE(fs::exists(dirs[0] / ".complete"));
  ASSERT_TRUE(fs::exists(dirs[0] / "checkpoint.safetensors")) << "killed before the first checkpoint";

  const int port = daug::testing::free_local_port();
  Proc r0(args, rank_env(0, 2, port, 60), tmp.path(), tmp / "b0.txt");
  Proc r1(args, rank_env(1, 2, port, 60), tmp.path(), tmp / "b1.txt");
  EXPECT_EQ(exit_code(r0.wait(400)), 0) << r0.output();
  EXPECT_EQ(exit_code(r1.wait(60)), 0) << r1.output();
  EXPECT_NE(r0.output().find("resuming from"), std::string::npos) << r0.output();
  EXPECT_TRUE(fs::exists(dirs[0] / ".complete"));
}

}  // namespace
