#pragma once
/// The collectives of data-parallel training (used by the Trainer under a distributed launch; see trainer.h).
///
/// Gradients: after the ranks' backward passes, the gradients are summed over the ranks (the Trainer weights each
/// rank's loss by its share of the global batch, so the sum is the global batch's gradient). They are flattened
/// into buckets of about `bucket_bytes` per dtype and all the buckets go to the communicator in one
/// all_reduce_sum call (which may run them concurrently), then are copied back.
///
/// Not overlapped with backward: LibTorch's tensor hooks fire with a gradient before it is accumulated into .grad,
/// once per micro-batch, and the gradient-accumulator post-hooks DDP's Reducer relies on are not a public C++ API.
/// On the CPU (Gloo) the reduction would compete with backward for the same cores anyway.
#include <daug/communicator.h>
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <cstdint>
#include <string>
#include <vector>

namespace daug::train {

inline constexpr int64_t kBucketBytes = int64_t{25} << 20;

/// Sums the gradients of `params` over all ranks in place and, in the same call, the 1-d float64 tensor `values`
/// (the step's weighted loss and loss parts; same length on every rank). A parameter whose gradient is undefined
/// here contributes zeros and stays undefined. Returns a 0-dim float64 tensor (not read: no host sync) counting the
/// parameters whose gradient was defined on some ranks but not on others (their updates would differ); the caller
/// checks it is 0 when it reads the step's values.
at::Tensor all_reduce_gradients(const std::vector<at::Tensor>& params, at::Tensor& values, Communicator& comm,
                                const std::string& phase, int64_t bucket_bytes = kBucketBytes);

/// Rank `root`'s `tensors` on every rank (the argument is ignored on the other ranks): names, dtypes and shapes
/// travel first (all_gather_bytes), then the data, one flattened broadcast per dtype on `device` (the backend's
/// device: CPU for Gloo, CUDA for NCCL). Returns CPU tensors in root's order.
NamedTensors broadcast_named(const NamedTensors& tensors, int root, Communicator& comm, const std::string& phase,
                             const c10::Device& device);

}  // namespace daug::train
