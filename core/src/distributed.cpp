// The launch environment and the c10d communicator (see daug/core/distributed.h).
//
// Failure naming: the tensor collectives run on c10d's process group, whose transport notices a peer that dies
// (its sockets close) at once and one that hangs after the timeout; either way the call throws, and the rank then
// asks the rendezvous store who is gone: every rank writes a heartbeat (a counter and its current phase) from a
// thread of its own every 0.5 s, and a rank that fails posts its error. A peer whose heartbeat stopped, or that
// posted an error, is named in the message; when the store itself is unreachable, rank 0 (which hosts it) is gone.
// Host-side exchanges (all_gather_bytes) go through the store and poll the same heartbeats while they wait.
#include <daug/core/distributed.h>
#include <daug/error.h>
#include <daug/log.h>

#include <ATen/ATen.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef DAUG_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

namespace daug::core {

namespace {

int parse_int(const char* name, const char* value, int min) {
  std::string s = value;
  size_t pos = 0;
  long v = -1;
  try {
    v = std::stol(s, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (s.empty() || pos != s.size() || v < min || v > 1 << 30)
    throw ConfigError(fmt::format("environment variable {}='{}': expected an integer >= {}", name, s, min));
  return static_cast<int>(v);
}

std::string to_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<uint8_t> to_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

#if TORCH_VERSION_MAJOR >= 2
using GroupBase = c10d::Backend;  // 2.x: a process group's backends carry the collectives
#else
using GroupBase = c10d::ProcessGroup;
#endif

class C10dCommunicator final : public Communicator {
 public:
  C10dCommunicator(const DistEnv& env, const DistOptions& opts) : env_(env), opts_(opts) {
    phase_ = "rendezvous";
    const auto timeout = opts_.timeout;
    const std::string at = fmt::format("{}:{}", env_.master_addr, env_.master_port);
    // torchrun (elastic agent) hosts a store at MASTER_PORT itself and says so: then rank 0 joins it as a client.
    const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    const bool agent_store = agent != nullptr && std::string(agent) == "True";
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env_.master_port);
    so.isServer = env_.rank == 0 && !agent_store;
    so.waitWorkers = false;  // the join below names the ranks that are missing instead
    so.timeout = timeout;
    try {
      tcp_store_ = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, so);
      c10d::TCPStoreOptions co = so;
      co.isServer = false;
      // daug's keys under their own prefix: a store shared with torchrun's agent keeps the agent's keys apart.
      store_ = c10::make_intrusive<c10d::PrefixStore>("daug", tcp_store_);
      hb_store_ = c10::make_intrusive<c10d::PrefixStore>(
          "daug", c10::make_intrusive<c10d::TCPStore>(env_.master_addr, co));
    } catch (const std::exception& e) {
      throw Error(fmt::format(
          "rank {}: cannot {} the rendezvous store at {} within {} s (phase: rendezvous): {}. {}", env_.rank,
          env_.rank == 0 ? "open" : "reach", at, timeout.count() / 1000.0, first_line(e.what()),
          env_.rank == 0 ? "Is MASTER_PORT free on this host?"
                         : "Is rank 0 running, and are MASTER_ADDR/MASTER_PORT the same on every rank?"));
    }
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    store_->set(fmt::format("hb/{}", env_.rank), to_bytes("0 rendezvous"));
    store_->set(fmt::format("join/{}", env_.rank), to_bytes(fmt::format("{} pid {}", host, ::getpid())));
    hb_thread_ = std::thread([this] { heartbeat_loop(); });
    try {
      std::vector<std::string> keys;
      for (int r = 0; r < env_.world_size; ++r) keys.push_back(fmt::format("join/{}", r));
      wait_for_keys(keys, "rendezvous: waiting for every rank to join", /*joining=*/true);
      make_group(host);
    } catch (...) {
      stop_ = true;  // no destructor runs for a constructor that throws
      hb_thread_.join();
      throw;
    }
    set_phase("started");
    log::info("distributed: rank {} of {} (local rank {}), {} backend, rendezvous at {} ({}), timeout {} s",
              env_.rank, env_.world_size, env_.local_rank, backend_, at, env_.source, timeout.count() / 1000.0);
  }

  ~C10dCommunicator() override {
    // Rank 0 hosts the store: keep it until every rank has let go of it (a peer still reading the last exchange
    // would otherwise see rank 0 "gone" instead of the error they will both report). After a failure the wait is
    // short (5 s): the peers are failing too, and a dead one never arrives.
    try {
      store_->add("exit", 1);
      if (env_.rank == 0) {
        const auto deadline =
            std::chrono::steady_clock::now() + (failed_ ? std::chrono::milliseconds(5000) : opts_.timeout);
        while (store_->add("exit", 0) < env_.world_size && std::chrono::steady_clock::now() < deadline &&
               stalled_peers().empty())
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    } catch (const std::exception&) {
    }
    stop_ = true;
    if (hb_thread_.joinable()) hb_thread_.join();
    group_.reset();
    hb_store_.reset();
    store_.reset();
    tcp_store_.reset();
  }

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  int local_rank() const override { return env_.local_rank; }

  void all_reduce_sum(std::vector<at::Tensor>& tensors, const std::string& phase) override {
    guarded(phase, [&] {
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (auto& t : tensors) {
        std::vector<at::Tensor> one{t};
        works.push_back(group_->allreduce(one, c10d::AllreduceOptions{}));
      }
      for (auto& w : works) w->wait(opts_.timeout);
    });
  }

  void broadcast(std::vector<at::Tensor>& tensors, int root, const std::string& phase) override {
    guarded(phase, [&] {
      c10d::BroadcastOptions bo;
      bo.rootRank = root;
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (auto& t : tensors) {
        std::vector<at::Tensor> one{t};
        works.push_back(group_->broadcast(one, bo));
      }
      for (auto& w : works) w->wait(opts_.timeout);
    });
  }

  std::vector<at::Tensor> all_gather(const at::Tensor& t, const std::string& phase) override {
    std::vector<std::vector<at::Tensor>> out(1);
    guarded(phase, [&] {
      at::Tensor in = t.contiguous();
      for (int r = 0; r < env_.world_size; ++r) out[0].push_back(at::empty_like(in));
      std::vector<at::Tensor> inputs{in};
      group_->allgather(out, inputs, c10d::AllgatherOptions{})->wait(opts_.timeout);
    });
    return out[0];
  }

  std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string& phase) override {
    const int64_t seq = seq_++;
    std::vector<std::string> keys;
    for (int r = 0; r < env_.world_size; ++r) keys.push_back(fmt::format("ag/{}/{}", seq, r));
    std::vector<std::string> out;
    guarded(phase, [&] {
      store_->set(keys[static_cast<size_t>(env_.rank)], to_bytes(bytes));
      wait_for_keys(keys, phase, /*joining=*/false);
      for (const auto& k : keys) out.push_back(to_string(store_->get(k)));
    });
    return out;
  }

  void barrier(const std::string& phase) override {
    // Through the store, not the process group: ranks meet here after unequal work (heatmap slices, rank 0's
    // metrics), which may take longer than a collective's timeout while every peer is alive (see wait_for_keys).
    all_gather_bytes("", phase);
  }

  void set_phase(const std::string& phase) override {
    std::lock_guard<std::mutex> lock(phase_mu_);
    phase_ = phase;
  }

  void post_failure(const std::string& message) {
    failed_ = true;
    try {
      store_->set(fmt::format("fail/{}", env_.rank), to_bytes(first_line(message)));
    } catch (const std::exception&) {
    }
  }

 private:
  void make_group(const char* host) {
    std::string backend = opts_.backend;
    const bool cuda = opts_.device.rfind("cuda", 0) == 0;
    if (backend == "auto") {
#ifdef DAUG_HAVE_NCCL
      backend = cuda ? "nccl" : "gloo";
#else
      backend = "gloo";
#endif
    }
    backend_ = backend;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("pg", store_);
    if (backend == "nccl") {
#ifdef DAUG_HAVE_NCCL
      DAUG_CHECK_AS(ConfigError, cuda, opts_.where, " = \"nccl\" needs a CUDA device, but [run].device = \"",
                    opts_.device, "\"; use \"gloo\" (or \"auto\")");
      // Without async error handling a dead peer leaves NCCL waiting forever.
      ::setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      ::setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = opts_.timeout;
      group_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, env_.rank, env_.world_size, o);
      return;
#else
      throw ConfigError(fmt::format("{} = \"nccl\", but this daug was built without NCCL (nccl.h was not found "
                                    "when it was built against LibTorch {}); use \"gloo\" or \"auto\"",
                                    opts_.where, TORCH_VERSION));
#endif
    }
    DAUG_CHECK_AS(ConfigError, backend == "gloo", opts_.where, " = \"", opts_.backend,
                  "\": must be \"auto\", \"gloo\" or \"nccl\"");
    auto o = c10d::ProcessGroupGloo::Options::create(opts_.timeout);
    // Gloo binds to the address the host name resolves to, which in containers is often unreachable: on one host,
    // or when GLOO_SOCKET_IFNAME names the interface, say so explicitly.
    const std::string addr = env_.master_addr;
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0')
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (addr == "localhost" || addr.rfind("127.", 0) == 0)
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    try {
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, env_.rank, env_.world_size, o);
    } catch (const std::exception& e) {
      fail("rendezvous: connecting the Gloo process group", e.what());
    }
    (void)host;
  }

  template <class F>
  void guarded(const std::string& phase, F&& f) {
    try {
      f();
    } catch (const Error&) {
      throw;  // already names the ranks
    } catch (const std::exception& e) {
      fail(phase, e.what());
    }
  }

  [[noreturn]] void fail(const std::string& phase, const std::string& what) {
    failed_ = true;
    std::string who = diagnose();
    throw Error(fmt::format("rank {} of {}: '{}' failed: {}{}", env_.rank, env_.world_size, phase, first_line(what),
                            who.empty() ? "" : ". " + who));
  }

  /// Waits until every key exists. Joining: at most the timeout, then names the ranks that never came. Otherwise a
  /// peer that is alive (its heartbeat advances) may take as long as its work takes (a rank with a bigger slice,
  /// rank 0 computing metrics), with a line every timeout period saying who is awaited; one that posted a failure
  /// or went silent ends the wait within seconds, named.
  void wait_for_keys(const std::vector<std::string>& keys, const std::string& phase, bool joining) {
    const auto start = std::chrono::steady_clock::now();
    auto deadline = start + opts_.timeout;
    auto next_check = start + std::chrono::seconds(2);
    auto missing = [&] {
      std::vector<int> m;
      for (size_t r = 0; r < keys.size(); ++r)
        if (!store_->check({keys[r]})) m.push_back(static_cast<int>(r));
      return m;
    };
    for (;;) {
      if (store_->check(keys)) return;
      const auto now = std::chrono::steady_clock::now();
      if (joining && now >= deadline) {
        failed_ = true;
        throw Error(fmt::format("rank {} of {}: rank(s) {} did not join the rendezvous within {} s (phase: {}); "
                                "were all {} processes started with MASTER_ADDR={} MASTER_PORT={}?",
                                env_.rank, env_.world_size, fmt::join(missing(), ", "),
                                opts_.timeout.count() / 1000.0, phase, env_.world_size, env_.master_addr,
                                env_.master_port));
      }
      if (!joining && now >= next_check) {
        next_check = now + std::chrono::seconds(2);
        std::string failed = posted_failures();
        auto stalled = stalled_peers();
        if (!failed.empty() || !stalled.empty()) fail(phase, "a peer is gone");
        if (now >= deadline) {
          deadline = now + opts_.timeout;
          std::vector<std::string> who;
          auto hb = heartbeats();
          for (int r : missing()) who.push_back(fmt::format("rank {} (alive, at '{}')", r, phase_of(hb[r])));
          log::warn("rank {}: still waiting at '{}' after {:.0f} s for {}", env_.rank, phase,
                    std::chrono::duration<double>(now - start).count(), fmt::join(who, ", "));
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  void heartbeat_loop() {
    int64_t beat = 0;
    while (!stop_) {
      std::string phase;
      {
        std::lock_guard<std::mutex> lock(phase_mu_);
        phase = phase_;
      }
      try {
        hb_store_->set(fmt::format("hb/{}", env_.rank), to_bytes(fmt::format("{} {}", ++beat, phase)));
      } catch (const std::exception&) {
        store_lost_ = true;
        return;
      }
      for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  /// Peers' heartbeats: rank -> "counter phase".
  std::map<int, std::string> heartbeats() {
    std::map<int, std::string> hb;
    for (int r = 0; r < env_.world_size; ++r) {
      const std::string k = fmt::format("hb/{}", r);
      if (r != env_.rank && store_->check({k})) hb[r] = to_string(store_->get(k));
    }
    return hb;
  }

  /// Ranks whose heartbeat has not changed for 8 s (by this rank's clock; 16 beats of a live peer, room for a
  /// loaded machine), observed across calls.
  std::vector<int> stalled_peers() {
    std::vector<int> out;
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [r, v] : heartbeats()) {
      auto& seen = seen_[r];
      if (seen.first != v) {
        seen = {v, now};
      } else if (now - seen.second > std::chrono::seconds(8)) {
        out.push_back(r);
      }
    }
    return out;
  }

  std::string posted_failures() {
    std::string out;
    for (int r = 0; r < env_.world_size; ++r) {
      const std::string k = fmt::format("fail/{}", r);
      if (r != env_.rank && store_->check({k}))
        out += fmt::format("{}rank {} failed: {}", out.empty() ? "" : "; ", r, to_string(store_->get(k)));
    }
    return out;
  }

  static std::string phase_of(const std::string& hb) {
    auto sp = hb.find(' ');
    return sp == std::string::npos ? hb : hb.substr(sp + 1);
  }

  /// Who is gone, in words; waits up to ~5.5 s for heartbeats to tell.
  std::string diagnose() {
    try {
      std::string failed = posted_failures();
      if (!failed.empty()) return failed;
      auto before = heartbeats();
      std::vector<std::string> gone;
      for (int i = 0; i < 55 && gone.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        failed = posted_failures();
        if (!failed.empty()) return failed;
        if (i < 50) continue;  // 5 s: ten heartbeats of a live peer
        for (const auto& [r, v] : heartbeats())
          if (before.count(r) && before[r] == v)
            gone.push_back(fmt::format("rank {} stopped responding (last phase: '{}')", r, phase_of(v)));
      }
      if (!gone.empty()) return fmt::format("{}", fmt::join(gone, "; "));
      return "every peer still answers the store (a peer may be stuck, or the network between ranks failed)";
    } catch (const std::exception&) {
      return fmt::format("rank 0 is gone (the rendezvous store it hosted at {}:{} no longer answers)",
                         env_.master_addr, env_.master_port);
    }
  }

  DistEnv env_;
  DistOptions opts_;
  std::string backend_;
  c10::intrusive_ptr<c10d::TCPStore> tcp_store_;  // this thread's client (rank 0: also the server)
  c10::intrusive_ptr<c10d::Store> store_;         // tcp_store_ under daug's key prefix
  c10::intrusive_ptr<c10d::Store> hb_store_;      // the heartbeat thread's own connection, same prefix
  c10::intrusive_ptr<GroupBase> group_;
  std::thread hb_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> store_lost_{false};
  std::mutex phase_mu_;
  std::string phase_;
  int64_t seq_ = 0;
  std::map<int, std::pair<std::string, std::chrono::steady_clock::time_point>> seen_;
};

std::weak_ptr<C10dCommunicator> g_current;

}  // namespace

std::optional<DistEnv> dist_env_from(const std::function<const char*(const char*)>& getenv_in) {
  auto get = [&](const char* name) -> const char* {
    const char* v = getenv_in ? getenv_in(name) : std::getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
  };
  DistEnv e;
  const char *rank = get("RANK"), *world = get("WORLD_SIZE"), *local = get("LOCAL_RANK"),
             *local_world = get("LOCAL_WORLD_SIZE");
  if (world != nullptr) {
    e.source = "RANK/WORLD_SIZE";
    e.world_size = parse_int("WORLD_SIZE", world, 1);
    if (e.world_size == 1) return std::nullopt;
    if (rank == nullptr)
      throw ConfigError(fmt::format("WORLD_SIZE={} is set but RANK is not: a distributed launch needs both", world));
    e.rank = parse_int("RANK", rank, 0);
    e.local_rank = local != nullptr ? parse_int("LOCAL_RANK", local, 0) : e.rank;
    e.local_world_size = local_world != nullptr ? parse_int("LOCAL_WORLD_SIZE", local_world, 1) : e.world_size;
  } else if (const char* ntasks = get("SLURM_NTASKS")) {
    e.source = "SLURM_PROCID/SLURM_NTASKS";
    e.world_size = parse_int("SLURM_NTASKS", ntasks, 1);
    if (e.world_size == 1) return std::nullopt;
    const char* procid = get("SLURM_PROCID");
    if (procid == nullptr)
      throw ConfigError(fmt::format("SLURM_NTASKS={} is set but SLURM_PROCID is not", ntasks));
    e.rank = parse_int("SLURM_PROCID", procid, 0);
    const char* lid = get("SLURM_LOCALID");
    e.local_rank = lid != nullptr ? parse_int("SLURM_LOCALID", lid, 0) : 0;
    const char* per_node = get("SLURM_NTASKS_PER_NODE");
    // SLURM_NTASKS_PER_NODE may read "4(x2)"; only its leading count matters here.
    e.local_world_size = per_node != nullptr ? std::max(1, std::atoi(per_node)) : 1;
  } else {
    return std::nullopt;
  }
  if (e.rank >= e.world_size)
    throw ConfigError(fmt::format("{}: rank {} is not below the world size {}", e.source, e.rank, e.world_size));
  const char* addr = get("MASTER_ADDR");
  const char* port = get("MASTER_PORT");
  if (addr == nullptr || port == nullptr)
    throw ConfigError(fmt::format(
        "a distributed launch ({} = {} processes) needs MASTER_ADDR and MASTER_PORT (the host and a free port of "
        "rank 0), but {} not set; `daug launch --nproc N` sets them, under SLURM export them in the job script",
        e.source, e.world_size, addr == nullptr && port == nullptr ? "both are" : addr == nullptr ? "MASTER_ADDR is" : "MASTER_PORT is"));
  e.master_addr = addr;
  e.master_port = parse_int("MASTER_PORT", port, 1);
  if (e.master_port > 65535)
    throw ConfigError(fmt::format("environment variable MASTER_PORT='{}': expected a port in [1, 65535]", port));
  return e;
}

std::shared_ptr<Communicator> connect(const DistEnv& env, const DistOptions& options) {
  if (options.device.rfind("cuda", 0) == 0) {
    // device = "cuda" means this rank's GPU: cuda:LOCAL_RANK becomes the current device.
    auto* impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    const auto count = impl->deviceCount();
    DAUG_CHECK_AS(ConfigError, env.local_rank < count, "local rank ", env.local_rank, " needs cuda:", env.local_rank,
                  ", but ", count, " CUDA device(s) are visible: start at most ", count,
                  " processes per node (one per GPU)");
    impl->setDevice(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(env.local_rank)));
  }
  auto c = std::make_shared<C10dCommunicator>(env, options);
  g_current = c;
  return c;
}

void post_failure(const std::string& message) {
  if (auto c = g_current.lock()) c->post_failure(message);
}

}  // namespace daug::core
