// Threads as ranks (see thread_ranks.h).
#include "thread_ranks.h"

#include <daug/communicator.h>
#include <daug/error.h>

#include <ATen/ATen.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace daug::testing {

namespace {

thread_local int t_rank = -1;

class ThreadRanks final : public Communicator {
 public:
  ThreadRanks(int world, double timeout_s) : world_(world), timeout_(timeout_s), tensors_(world), bytes_(world) {}

  int rank() const override {
    DAUG_CHECK(t_rank >= 0, "ThreadRanks: called from a thread that is not a rank");
    return t_rank;
  }
  int world_size() const override { return world_; }
  int local_rank() const override { return rank(); }

  void all_reduce_sum(std::vector<at::Tensor>& ts, const std::string& phase) override {
    exchange(ts, phase, [&](int) {
      for (size_t i = 0; i < ts.size(); ++i) {
        at::Tensor sum = tensors_[0][i].clone();
        for (int r = 1; r < world_; ++r) sum += tensors_[static_cast<size_t>(r)][i];
        ts[i].copy_(sum);
      }
    });
  }
  void broadcast(std::vector<at::Tensor>& ts, int root, const std::string& phase) override {
    exchange(ts, phase, [&](int) {
      const auto& src = tensors_.at(static_cast<size_t>(root));
      DAUG_CHECK(src.size() == ts.size(), phase, ": broadcast of ", ts.size(), " tensors, root has ", src.size());
      for (size_t i = 0; i < ts.size(); ++i) ts[i].copy_(src[i]);
    });
  }
  std::vector<at::Tensor> all_gather(const at::Tensor& t, const std::string& phase) override {
    std::vector<at::Tensor> in{t}, out;
    exchange(in, phase, [&](int) {
      for (int r = 0; r < world_; ++r) out.push_back(tensors_[static_cast<size_t>(r)][0].clone());
    });
    return out;
  }
  std::vector<std::string> all_gather_bytes(const std::string& b, const std::string& phase) override {
    std::vector<std::string> out;
    std::vector<at::Tensor> none;
    exchange(
        none, phase, [&](int) { out = bytes_; }, &b);
    return out;
  }
  void barrier(const std::string& phase) override {
    std::vector<at::Tensor> none;
    exchange(none, phase, [](int) {});
  }
  void set_phase(const std::string&) override {}

  /// Marks the launch failed (the peers' waits throw); returns whether this is the first failure.
  bool fail() {
    std::lock_guard<std::mutex> lock(mu_);
    const bool first = !failed_;
    failed_ = true;
    cv_.notify_all();
    return first;
  }

 private:
  // Deposit (clones of) this rank's inputs, wait for all, run `read`, wait for all to have read.
  template <class F>
  void exchange(std::vector<at::Tensor>& ts, const std::string& phase, F&& read, const std::string* bytes = nullptr) {
    const int r = rank();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& slot = tensors_[static_cast<size_t>(r)];
      slot.clear();
      for (const auto& t : ts) slot.push_back(t.detach().clone());
      if (bytes) bytes_[static_cast<size_t>(r)] = *bytes;
    }
    wait_all(phase);
    read(r);
    wait_all(phase);
  }
  void wait_all(const std::string& phase) {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t gen = generation_;
    if (++arrived_ == world_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    const bool ok =
        cv_.wait_for(lock, std::chrono::duration<double>(timeout_), [&] { return generation_ != gen || failed_; });
    DAUG_CHECK(!failed_, "ThreadRanks: rank ", t_rank, " in '", phase, "': a peer failed");
    DAUG_CHECK(ok, "ThreadRanks: rank ", t_rank, " in '", phase, "': the peers did not join within ", timeout_, " s");
  }

  int world_;
  double timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  bool failed_ = false;
  std::vector<std::vector<at::Tensor>> tensors_;
  std::vector<std::string> bytes_;
};

}  // namespace

void run_thread_ranks(int world, const std::function<void(int rank)>& fn, double timeout_s) {
  auto comm = std::make_shared<ThreadRanks>(world, timeout_s);
  set_communicator(comm);
  std::exception_ptr first;  // the error of the rank that failed first (the others then see "a peer failed")
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      t_rank = r;
      try {
        fn(r);
      } catch (...) {
        auto e = std::current_exception();
        if (comm->fail()) first = e;  // written once, by the first failing thread, read after join
      }
    });
  for (auto& t : threads) t.join();
  set_communicator(nullptr);
  if (first) std::rethrow_exception(first);
}

}  // namespace daug::testing
