#pragma once
/// Embeddings of every rank with gradient, for a contrastive loss over the global batch under a distributed launch
/// (train_clip's gather = "global"; open_clip's gather_with_grad).
#include <daug/communicator.h>
#include <daug/tensor.h>

#include <string>

namespace daug::clip {

/// The rows of `x` ([n, ...], the same shape on every rank) of every rank, concatenated in rank order
/// ([world·n, ...]). Differentiable: backward all-reduces (sums) the incoming gradient over the ranks and returns
/// this rank's rows. When every rank computes the same loss L on the gathered rows, the gradient reaching this
/// rank's rows is world × ∂L/∂(its rows): weighted 1/world and summed over the ranks (the Trainer's
/// StepOutput::whole_batch) the parameter gradients are exactly ∂L/∂θ. In a single process: x itself.
at::Tensor all_gather_rows(const at::Tensor& x, Communicator& comm, const std::string& phase);

}  // namespace daug::clip
