#pragma once
// The ranks of a distributed launch simulated one after another in one process, for stage tests that check how a
// stage splits its work and what rank 0 does with the others' results, without processes or sockets (the
// multi-process tests run the real `daug` binary).
//
// Run the ranks' code highest rank first, each under its SequentialRanks::Scope: barrier() has nothing to wait for,
// all_gather/all_gather_bytes give what the ranks that already ran posted for the same phase (zeros / "" for those
// that have not run yet, which only ranks > 0 see and ignore), so rank 0, run last, sees every rank's value.
#include <daug/communicator.h>
#include <daug/error.h>

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace daug::testing {

class SequentialRanks {
 public:
  explicit SequentialRanks(int world) : board_(std::make_shared<Board>()), world_(world) {}

  /// Makes this process rank `rank` of the world while it lives (restores the single-process communicator after).
  class Scope {
   public:
    Scope(const SequentialRanks& ranks, int rank) {
      set_communicator(std::make_shared<Rank>(ranks.board_, rank, ranks.world_));
    }
    ~Scope() { set_communicator(nullptr); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
  };

  /// The phases of the barriers rank `rank` called, in order.
  const std::vector<std::string>& barriers(int rank) const { return board_->barriers[rank]; }

 private:
  struct Board {
    std::map<std::string, std::vector<std::string>> bytes;
    std::map<std::string, std::vector<at::Tensor>> tensors;
    std::map<int, std::vector<std::string>> barriers;
  };

  class Rank final : public Communicator {
   public:
    Rank(std::shared_ptr<Board> board, int rank, int world) : board_(std::move(board)), rank_(rank), world_(world) {}
    int rank() const override { return rank_; }
    int world_size() const override { return world_; }
    int local_rank() const override { return rank_; }
    void all_reduce_sum(std::vector<at::Tensor>&, const std::string& phase) override {
      throw Error("SequentialRanks: all_reduce_sum (" + phase + ") cannot be simulated one rank after another");
    }
    void broadcast(std::vector<at::Tensor>&, int, const std::string& phase) override {
      throw Error("SequentialRanks: broadcast (" + phase + ") cannot be simulated one rank after another");
    }
    std::vector<at::Tensor> all_gather(const at::Tensor& t, const std::string& phase) override {
      auto& slot = board_->tensors[phase];
      slot.resize(static_cast<size_t>(world_));
      slot[static_cast<size_t>(rank_)] = t.clone();
      std::vector<at::Tensor> out;
      for (const auto& s : slot) out.push_back(s.defined() ? s : at::zeros_like(t));
      return out;
    }
    std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string& phase) override {
      auto& slot = board_->bytes[phase];
      slot.resize(static_cast<size_t>(world_));
      slot[static_cast<size_t>(rank_)] = bytes;
      return slot;
    }
    void barrier(const std::string& phase) override { board_->barriers[rank_].push_back(phase); }
    void set_phase(const std::string&) override {}

   private:
    std::shared_ptr<Board> board_;
    int rank_, world_;
  };

  std::shared_ptr<Board> board_;
  int world_;
};

}  // namespace daug::testing
