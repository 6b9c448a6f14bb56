#pragma once
/// Embedding many items under a distributed launch (the evaluate stage, `daug embed`): each rank embeds a
/// contiguous shard of the items, padded as PyTorch's DistributedSampler pads (with the first items again) so that
/// every rank holds the same number of rows for the all-gather, and the gathered rows come back in the items'
/// order with the padding dropped. In a single process the shard is every item and nothing is gathered, so the
/// result is exactly what embedding the whole list gives.
#include <daug/tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace daug::clip {

/// The items of [0, n) that rank `rank` of `world` embeds: positions [rank·m, (rank+1)·m) of 0, 1, …, n−1, 0, 1, …
/// with m = ceil(n / world). Every rank gets m items (n ≥ 1), the first (m·world − n) items a second time as padding.
std::vector<int64_t> embed_shard(int64_t n, int rank, int world);

/// The rows of all n items, in order: every rank's `local` rows (embed_shard(n, rank, world) items; the same shape
/// on every rank) all-gathered through daug::communicator() on `device` (the launch's: CUDA under NCCL), the padding
/// dropped, returned on local's device. In a single process `local` itself. `phase` names the collective.
at::Tensor gather_shards(const at::Tensor& local, int64_t n, const at::Device& device, const std::string& phase);

/// The elements of `items` at embed_shard(items.size(), rank, world) for this process's rank.
template <class T>
std::vector<T> shard_of(const std::vector<T>& items, int rank, int world) {
  std::vector<T> out;
  for (int64_t i : embed_shard(static_cast<int64_t>(items.size()), rank, world))
    out.push_back(items[static_cast<size_t>(i)]);
  return out;
}

}  // namespace daug::clip
