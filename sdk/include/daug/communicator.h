#pragma once
/// Communicator: what a process knows about the other processes of a distributed launch (ranks), and the
/// collectives it may run with them. One process is one rank; `daug launch --nproc N` (or torchrun / srun, which set
/// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) starts N of them, and the core installs a communicator
/// on PyTorch's c10d (Gloo on CPUs, NCCL on GPUs) before it builds anything. Without a distributed launch,
/// communicator() is a single-process one: rank 0 of 1, and every collective returns its input.
///
/// Every rank must call the same collectives in the same order with tensors of the same shapes and dtypes. `phase`
/// says what the collective is for ("train_clip step 12: gradient all-reduce"): when a peer dies or does not answer
/// within the launch's timeout, the call throws daug::Error naming the peer rank, what it was last doing and this
/// phase, instead of hanging.
///
/// Example (a stage that splits work and lets rank 0 write the shared file):
///   auto& comm = daug::communicator();
///   for (size_t i = comm.rank(); i < items.size(); i += comm.world_size()) process(items[i]);
///   comm.barrier("my_stage: all items written");
///   if (comm.is_main()) daug::write_file_atomic(ctx.output("index"), index_text);
#include <daug/api.h>
#include <daug/tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace daug {

class DAUG_SDK_API Communicator {
 public:
  virtual ~Communicator();
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// Rank among the processes of this node (selects the GPU: cuda:LOCAL_RANK).
  virtual int local_rank() const = 0;
  bool is_main() const { return rank() == 0; }
  bool distributed() const { return world_size() > 1; }

  /// Sums each tensor in place over all ranks (same shapes and dtypes on every rank; dense, contiguous).
  virtual void all_reduce_sum(std::vector<at::Tensor>& tensors, const std::string& phase) = 0;
  /// Copies `root`'s tensors into every rank's tensors of the same shapes, in place.
  virtual void broadcast(std::vector<at::Tensor>& tensors, int root, const std::string& phase) = 0;
  /// Every rank's `t` in rank order (t has the same shape and dtype on every rank). No gradient flows.
  virtual std::vector<at::Tensor> all_gather(const at::Tensor& t, const std::string& phase) = 0;
  /// Every rank's `bytes` in rank order; lengths may differ (configuration hashes, small results).
  virtual std::vector<std::string> all_gather_bytes(const std::string& bytes, const std::string& phase) = 0;
  /// Returns once every rank has called it.
  virtual void barrier(const std::string& phase) = 0;
  /// What this rank is doing now (shown in the other ranks' messages if this one stops answering). Cheap: call it
  /// at phase changes (a stage starts, training begins), not per step.
  virtual void set_phase(const std::string& phase) = 0;
};

/// The communicator of this process (a single-process one unless the core installed a distributed one).
DAUG_SDK_API Communicator& communicator();
/// Installs `c` as this process's communicator (the core does, at start-up of a distributed launch; tests may).
/// Passing null restores the single-process one.
DAUG_SDK_API void set_communicator(std::shared_ptr<Communicator> c);

/// The communicator of a single process: rank 0 of 1; collectives return their input.
class DAUG_SDK_API SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  void all_reduce_sum(std::vector<at::Tensor>&, const std::string&) override {}
  void broadcast(std::vector<at::Tensor>&, int, const std::string&) override {}
  std::vector<at::Tensor> all_gather(const at::Tensor& t, const std::string&) override { return {t}; }
  std::vector<std::string> all_gather_bytes(const std::string& b, const std::string&) override { return {b}; }
  void barrier(const std::string&) override {}
  void set_phase(const std::string&) override {}
};

}  // namespace daug
