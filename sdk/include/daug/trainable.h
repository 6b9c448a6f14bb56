#pragma once
/// Mixin for components with learnable weights (Generator, Classifier, Backbone). Training stages and
/// checkpoint code use only this, so they work for any plugin implementing it.
#include <daug/api.h>
#include <daug/tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace daug {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

class DAUG_SDK_API Trainable {
 public:
  virtual ~Trainable();
  /// Parameters with requires_grad, in a stable order (the optimizer's order).
  virtual std::vector<at::Tensor> parameters() = 0;
  /// Every persistent tensor (parameters and buffers) by its checkpoint key, in a stable order.
  virtual NamedTensors state() = 0;
  /// Copies `state` into the model. Contract: a missing, unexpected or mis-shaped key throws daug::DataError
  /// naming the key and both shapes; nothing is modified in that case.
  virtual void load_state(const NamedTensors& state) = 0;
  /// Switches dropout/normalisation between training and evaluation behaviour.
  virtual void set_training(bool on) = 0;
};

}  // namespace daug
