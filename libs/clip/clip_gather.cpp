// All-gather with gradient (see clip_gather.h).
#include "clip_gather.h"

#include <daug/error.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace daug::clip {

namespace {

struct GatherRows : torch::autograd::Function<GatherRows> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, Communicator* comm,
                            const std::string& phase) {
    ctx->saved_data["comm"] = reinterpret_cast<int64_t>(comm);
    ctx->saved_data["phase"] = phase;
    ctx->saved_data["rows"] = x.size(0);
    ctx->saved_data["rank"] = static_cast<int64_t>(comm->rank());
    const std::vector<at::Tensor> parts = comm->all_gather(x.contiguous(), phase);
    for (const auto& p : parts)
      DAUG_CHECK(p.sizes() == x.sizes(), phase, ": all ranks must gather the same shape, got ", p.sizes(), " and ",
                 x.sizes());
    return at::cat(parts);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto* comm = reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    const int64_t rows = ctx->saved_data["rows"].toInt(), rank = ctx->saved_data["rank"].toInt();
    std::vector<at::Tensor> g{grad_out[0].contiguous().clone()};
    comm->all_reduce_sum(g, ctx->saved_data["phase"].toStringRef() + " (backward)");
    return {g[0].narrow(0, rank * rows, rows), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor all_gather_rows(const at::Tensor& x, Communicator& comm, const std::string& phase) {
  DAUG_CHECK(x.dim() >= 1, "all_gather_rows: needs rows, got a 0-dim tensor");
  if (!comm.distributed()) return x;
  return GatherRows::apply(x, &comm, phase);
}

}  // namespace daug::clip
