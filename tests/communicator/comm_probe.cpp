// A rank of a distributed launch for communicator_test: joins through the launch environment (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT) like `daug run` does, then runs one scenario and prints what it saw.
//   comm_probe collectives   all_reduce_sum, broadcast, all_gather, all_gather_bytes, barrier; prints the results
//   comm_probe die           rank 1 is killed (SIGKILL) after joining; rank 0 waits at a barrier
//   comm_probe throw         rank 1 fails with an error it posts, then exits 1; rank 0 waits at a barrier
//   comm_probe bytes_die     rank 1 is killed; rank 0 waits in all_gather_bytes (the store path)
#include <daug/core/distributed.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <csignal>
#include <iostream>
#include <thread>

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "collectives";
  try {
    auto env = daug::core::dist_env_from();
    if (!env) {
      std::cerr << "comm_probe: not a distributed launch\n";
      return 2;
    }
    daug::core::DistOptions o;
    if (const char* t = std::getenv("DAUG_DIST_TIMEOUT_S")) o.timeout = std::chrono::milliseconds(std::atoi(t) * 1000);
    o.where = "probe";
    auto comm = daug::core::connect(*env, o);
    const int r = comm->rank(), w = comm->world_size();
    if (mode == "collectives") {
      std::vector<at::Tensor> ts{at::full({3}, double(r + 1), at::kDouble), at::arange(4, at::kFloat) * (r + 1)};
      comm->all_reduce_sum(ts, "probe: all-reduce");
      std::vector<at::Tensor> b{at::full({2}, double(10 + r), at::kDouble)};
      comm->broadcast(b, w - 1, "probe: broadcast");
      auto g = comm->all_gather(at::full({2}, int64_t(r * 7), at::kLong), "probe: all-gather");
      auto bytes = comm->all_gather_bytes(std::string(static_cast<size_t>(r + 1), char('a' + r)), "probe: bytes");
      comm->barrier("probe: barrier");
      std::vector<int64_t> gathered;
      for (auto& t : g) gathered.push_back(t[1].item<int64_t>());
      std::cout << fmt::format("rank {} sum {} {} bcast {} gather {} bytes {}\n", r, ts[0][0].item<double>(),
                               ts[1][3].item<float>(), b[0][1].item<double>(), fmt::join(gathered, ","),
                               fmt::join(bytes, ","))
                << std::flush;
      return 0;
    }
    if (r == 1) {
      comm->set_phase("probe: step 3 of training");
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a heartbeat carries the phase
      if (mode == "throw") {
        daug::core::post_failure("probe: rank 1 broke on purpose");
        std::_Exit(1);
      }
      std::raise(SIGKILL);
    }
    if (mode == "bytes_die")
      comm->all_gather_bytes("x", "probe: exchanging results");
    else
      comm->barrier("probe: waiting at the barrier");
    std::cout << "rank 0 was not stopped\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
