#pragma once
/// The only tensor include an SDK header may use: at::Tensor without the 330k-line <torch/torch.h>
/// (which costs ~15 s per translation unit on 2 cores). Include <torch/torch.h> in your plugin's .cpp.
#include <ATen/core/Tensor.h>
