// The launch environment contract, and the c10d communicator across real processes on localhost (Gloo): the
// collectives' results, and failures that name the rank instead of hanging. Each multi-process case is bounded.
#include <daug/core/distributed.h>
#include <daug/error.h>

#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "test_support.h"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace {

using Env = std::map<std::string, std::string>;

std::optional<daug::core::DistEnv> parse(const Env& env) {
  return daug::core::dist_env_from([&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(DistEnv, TorchrunVariables) {
  auto e = parse({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                  {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29500"}});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->rank, 3);
  EXPECT_EQ(e->world_size, 4);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_world_size, 2);
  EXPECT_EQ(e->master_addr, "node7");
  EXPECT_EQ(e->master_port, 29500);
}

TEST(DistEnv, SlurmFallbackAndNotDistributed) {
  auto e = parse({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                  {"SLURM_NTASKS_PER_NODE", "4(x2)"}, {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "1234"}});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->rank, 5);
  EXPECT_EQ(e->world_size, 8);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_world_size, 4);
  EXPECT_EQ(e->source, "SLURM_PROCID/SLURM_NTASKS");
  EXPECT_FALSE(parse({}).has_value());
  EXPECT_FALSE(parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).has_value());
  EXPECT_FALSE(parse({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}}).has_value());
}

TEST(DistEnv, BadVariablesAreNamed) {
  using daug::testing::expect_error_contains;
  const Env ok{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}};
  auto with = [&](const std::string& k, const std::string& v) {
    Env e = ok;
    if (v.empty()) e.erase(k); else e[k] = v;
    return e;
  };
  expect_error_contains([&] { parse(with("RANK", "2")); }, {"rank 2 is not below the world size 2"});
  expect_error_contains([&] { parse(with("RANK", "x1")); }, {"RANK='x1'", "expected an integer >= 0"});
  expect_error_contains([&] { parse(with("WORLD_SIZE", "2.5")); }, {"WORLD_SIZE='2.5'"});
  expect_error_contains([&] { parse(with("RANK", "")); }, {"WORLD_SIZE=2 is set but RANK is not"});
  expect_error_contains([&] { parse(with("MASTER_PORT", "")); }, {"needs MASTER_ADDR and MASTER_PORT", "MASTER_PORT is not set"});
  expect_error_contains([&] { parse(with("MASTER_PORT", "70000")); }, {"MASTER_PORT='70000'", "[1, 65535]"});
}

struct Rank {
  pid_t pid = -1;
  std::filesystem::path out;
  int status = -1;
  double seconds = 0;
  std::string text() const {
    std::ifstream in(out);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

/// Starts ranks `ranks` of a world of `world` running comm_probe `mode`; waits for all (killing them after
/// `limit_s`, which fails the test).
std::vector<Rank> launch(const std::string& mode, int world, std::vector<int> ranks, int timeout_s, double limit_s,
                         int port = 0, std::vector<std::string> extra_env = {}) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("daug_communicator_" + mode + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  if (port == 0) port = daug::testing::free_local_port();
  std::vector<Rank> out;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r : ranks) {
    Rank k;
    k.out = dir / ("rank" + std::to_string(r) + ".txt");
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(world));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(port));
    env.push_back("DAUG_DIST_TIMEOUT_S=" + std::to_string(timeout_s));
    for (const auto& e : extra_env) env.push_back(e);
    std::vector<char*> envp;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string bin = DAUG_COMM_PROBE, m = mode;
    char* argv[] = {bin.data(), m.data(), nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, k.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    EXPECT_EQ(posix_spawn(&k.pid, bin.c_str(), &fa, nullptr, argv, envp.data()), 0);
    posix_spawn_file_actions_destroy(&fa);
    out.push_back(k);
  }
  size_t left = out.size();
  while (left > 0) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (auto& k : out) {
      if (k.status != -1) continue;
      int st = 0;
      if (::waitpid(k.pid, &st, WNOHANG) == k.pid) {
        k.status = st;
        k.seconds = el;
        --left;
      } else if (el > limit_s) {
        ::kill(k.pid, SIGKILL);
        ::waitpid(k.pid, &st, 0);
        k.status = st;
        k.seconds = el;
        --left;
        ADD_FAILURE() << "rank " << (&k - &out[0]) << " of '" << mode << "' still ran after " << limit_s
                      << " s: killed. Output:\n" << k.text();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return out;
}

bool exited_ok(const Rank& k) { return WIFEXITED(k.status) && WEXITSTATUS(k.status) == 0; }

TEST(C10dCommunicator, CollectivesAcrossTwoProcesses) {
  auto ranks = launch("collectives", 2, {0, 1}, 30, 60);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(exited_ok(ranks[r])) << ranks[r].text();
    // sum of (r+1) = 3; arange(4)[3] * (1 + 2) = 9; broadcast from rank 1: 11; gather r*7; bytes "a","bb".
    const std::string want = "rank " + std::to_string(r) + " sum 3 9 bcast 11 gather 0,7 bytes a,bb";
    EXPECT_NE(ranks[r].text().find(want), std::string::npos) << ranks[r].text();
  }
}

// torchrun's elastic agent hosts the store at MASTER_PORT and sets TORCHELASTIC_USE_AGENT_STORE=True: rank 0 must
// join it as a client (a server of its own would find the port taken), and daug's keys stay under their prefix.
TEST(C10dCommunicator, JoinsTorchrunsAgentStore) {
  const int port = daug::testing::free_local_port();
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(port);
  so.isServer = true;
  so.waitWorkers = false;
  auto agent = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  agent->set("agent/key", std::vector<uint8_t>{1});
  auto ranks = launch("collectives", 2, {0, 1}, 30, 60, port, {"TORCHELASTIC_USE_AGENT_STORE=True"});
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(exited_ok(ranks[r])) << ranks[r].text();
    EXPECT_NE(ranks[r].text().find("rank " + std::to_string(r) + " sum 3 9"), std::string::npos) << ranks[r].text();
  }
  EXPECT_TRUE(agent->check({"daug/join/0", "daug/join/1"}));
  EXPECT_FALSE(agent->check({"join/0"}));
}

// Rank 1 is killed (SIGKILL) in the middle of "training": rank 0, waiting at a barrier, fails within seconds (not
// the 60 s timeout) and names rank 1 and the phase its last heartbeat carried.
TEST(C10dCommunicator, AKilledRankIsNamedWithItsPhase) {
  auto ranks = launch("die", 2, {0, 1}, 60, 50);
  EXPECT_TRUE(WIFSIGNALED(ranks[1].status) && WTERMSIG(ranks[1].status) == SIGKILL);
  const std::string t = ranks[0].text();
  EXPECT_TRUE(WIFEXITED(ranks[0].status) && WEXITSTATUS(ranks[0].status) == 1) << t;
  EXPECT_NE(t.find("rank 0 of 2: 'probe: waiting at the barrier' failed"), std::string::npos) << t;
  EXPECT_NE(t.find("rank 1 stopped responding (last phase: 'probe: step 3 of training')"), std::string::npos) << t;
  EXPECT_LT(ranks[0].seconds, 30) << t;
}

// A live peer that takes longer than the timeout to reach a barrier (a bigger slice) is waited for, with a line
// saying whom rank 0 awaits; the timeout is for peers that are gone, not for slow ones.
TEST(C10dCommunicator, ABarrierWaitsForALiveSlowPeerBeyondTheTimeout) {
  auto ranks = launch("slow", 2, {0, 1}, 2, 60);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(exited_ok(ranks[r])) << ranks[r].text();
    EXPECT_NE(ranks[r].text().find("passed the barrier"), std::string::npos) << ranks[r].text();
  }
  EXPECT_NE(ranks[0].text().find("still waiting at 'probe: end of the slices'"), std::string::npos) << ranks[0].text();
  EXPECT_NE(ranks[0].text().find("rank 1 (alive, at 'probe: a long slice')"), std::string::npos) << ranks[0].text();
}

// The same on the store path (host-side exchange of results).
TEST(C10dCommunicator, AKilledRankIsNamedDuringAHostExchange) {
  auto ranks = launch("bytes_die", 2, {0, 1}, 60, 50);
  const std::string t = ranks[0].text();
  EXPECT_TRUE(WIFEXITED(ranks[0].status) && WEXITSTATUS(ranks[0].status) == 1) << t;
  EXPECT_NE(t.find("'probe: exchanging results' failed"), std::string::npos) << t;
  EXPECT_NE(t.find("rank 1 stopped responding"), std::string::npos) << t;
  EXPECT_LT(ranks[0].seconds, 30) << t;
}

// A rank that fails with an error posts it; its peers show that error rather than guessing.
TEST(C10dCommunicator, APeersPostedErrorIsShown) {
  auto ranks = launch("throw", 2, {0, 1}, 60, 50);
  const std::string t = ranks[0].text();
  EXPECT_TRUE(WIFEXITED(ranks[0].status) && WEXITSTATUS(ranks[0].status) == 1) << t;
  EXPECT_NE(t.find("rank 1 failed: probe: rank 1 broke on purpose"), std::string::npos) << t;
  EXPECT_LT(ranks[0].seconds, 30) << t;
}

// Only rank 0 of 2 is started: it gives up after the (3 s) timeout, naming rank 1 and the rendezvous.
TEST(C10dCommunicator, APeerThatNeverJoinsIsNamedAfterTheTimeout) {
  auto ranks = launch("collectives", 2, {0}, 3, 40);
  const std::string t = ranks[0].text();
  EXPECT_TRUE(WIFEXITED(ranks[0].status) && WEXITSTATUS(ranks[0].status) == 1) << t;
  EXPECT_NE(t.find("rank(s) 1 did not join the rendezvous within 3 s"), std::string::npos) << t;
  EXPECT_GE(ranks[0].seconds, 3);
  EXPECT_LT(ranks[0].seconds, 20) << t;
}

// Rank 1 alone, with no rank 0 hosting the store: it cannot reach it and says what to check.
TEST(C10dCommunicator, NoRankZeroIsReportedAfterTheTimeout) {
  auto ranks = launch("collectives", 2, {1}, 3, 40);
  const std::string t = ranks[0].text();
  EXPECT_TRUE(WIFEXITED(ranks[0].status) && WEXITSTATUS(ranks[0].status) == 1) << t;
  EXPECT_NE(t.find("rank 1: cannot reach the rendezvous store at 127.0.0.1:"), std::string::npos) << t;
  EXPECT_NE(t.find("Is rank 0 running"), std::string::npos) << t;
  EXPECT_LT(ranks[0].seconds, 25) << t;
}

}  // namespace
