#pragma once
// SyncCounter: counts the operations that make the host wait for a device (CUDA) while it is alive, so a test can
// assert that a per-step path (a guided DDIM step, a training step) has none. Process-wide (every thread, including
// autograd's device threads), through an ATen RecordFunction global callback removed in the destructor.
//
// What it counts:
//   item     aten::_local_scalar_dense: what .item(), item<T>() and `if (tensor)` call. Counted for tensors on ANY
//            device, so a CPU-only test fails as soon as someone adds an .item() to the path.
//   d2h      aten::copy_ into a CPU tensor from a tensor on another device (.cpu(), .to(kCPU), .to(at::kCPU, dtype)).
//            Only a device run can see these: on the CPU `.cpu()` of a CPU tensor is no copy.
//   dynamic  ops whose output shape depends on the data (nonzero, masked_select, unique, equal): a device run syncs
//            to size the output.
//   h2d      blocking (non_blocking = false) copies from the CPU to a device: PyTorch synchronises the stream
//            after each. Reported, not part of total() (batch uploads are the loader's business).
//
// Usage:
//   daug::testing::SyncCounter c;        // starts counting
//   run_one_step();
//   EXPECT_EQ(c.total(), 0) << c.summary();
// One SyncCounter at a time (a second one throws).
#include <atomic>
#include <cstdint>
#include <string>

namespace daug::testing {

class SyncCounter {
 public:
  SyncCounter();
  ~SyncCounter();
  SyncCounter(const SyncCounter&) = delete;
  SyncCounter& operator=(const SyncCounter&) = delete;

  int64_t item() const { return item_.load(); }
  int64_t d2h() const { return d2h_.load(); }
  int64_t dynamic() const { return dynamic_.load(); }
  int64_t h2d() const { return h2d_.load(); }
  /// item + d2h + dynamic: the host syncs of the counted span.
  int64_t total() const { return item() + d2h() + dynamic(); }
  /// Sets every count back to 0.
  void reset();
  /// "item=2 d2h=0 dynamic=0 (h2d=1)".
  std::string summary() const;

  // Used by the RecordFunction callback.
  void count(int kind);

 private:
  std::atomic<int64_t> item_{0}, d2h_{0}, dynamic_{0}, h2d_{0};
  uint64_t handle_ = 0;
};

}  // namespace daug::testing
