#include "clip_shard.h"

#include <daug/communicator.h>
#include <daug/error.h>

#include <ATen/ATen.h>

namespace daug::clip {

std::vector<int64_t> embed_shard(int64_t n, int rank, int world) {
  DAUG_CHECK(world >= 1 && rank >= 0 && rank < world && n >= 0, "embed_shard: rank ", rank, " of ", world, " ranks, ",
             n, " items");
  const int64_t m = (n + world - 1) / world;
  std::vector<int64_t> out;
  for (int64_t p = rank * m; p < (rank + 1) * m; ++p) out.push_back(p % n);
  return out;
}

at::Tensor gather_shards(const at::Tensor& local, int64_t n, const at::Device& device, const std::string& phase) {
  auto& comm = communicator();
  if (!comm.distributed()) return local;
  const int64_t m = (n + comm.world_size() - 1) / comm.world_size();
  DAUG_CHECK(local.dim() >= 1 && local.size(0) == m, phase, ": rank ", comm.rank(), " has ", local.sizes(),
             " rows for a shard of ", m, " of ", n, " items");
  std::vector<at::Tensor> parts = comm.all_gather(local.to(device).contiguous(), phase);
  return at::cat(parts, 0).narrow(0, 0, n).to(local.device());
}

}  // namespace daug::clip
