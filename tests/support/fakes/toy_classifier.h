#pragma once
// TEST-ONLY Classifiers for the guidance and generator tests. Include only from tests.
#include <daug/classifier.h>

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace daug::testing {

/// A Classifier with no saved state: no parameters, empty state(), load_state() and set_training() do nothing.
struct StatelessClassifier : Classifier {
  std::vector<at::Tensor> parameters() override { return {}; }
  NamedTensors state() override { return {}; }
  void load_state(const NamedTensors&) override {}
  void set_training(bool) override {}
};

/// logits = W2 · tanh(W1 · vec(x) + b + w_t · t/1000), in float64, with K classes, D = numel of one image and
/// H hidden units drawn after at::manual_seed(seed); records the timesteps it receives. Class names: `labels`,
/// or c0, c1, ... when empty.
struct ToyClassifier : StatelessClassifier {
  at::Tensor W1, b, wt, W2;
  std::vector<at::Tensor> seen_t;
  std::vector<std::string> names;
  ToyClassifier(int64_t k, int64_t d, int64_t h, uint64_t seed, std::vector<std::string> labels = {})
      : names(std::move(labels)) {
    at::manual_seed(seed);
    W1 = at::randn({h, d}, at::kDouble).set_requires_grad(true);
    b = at::randn({h}, at::kDouble).set_requires_grad(true);
    wt = at::randn({h}, at::kDouble).set_requires_grad(true);
    W2 = at::randn({k, h}, at::kDouble).set_requires_grad(true);
    for (int64_t i = static_cast<int64_t>(names.size()); i < k; ++i) names.push_back("c" + std::to_string(i));
  }
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override {
    seen_t.push_back(t.clone());
    at::Tensor pre = at::matmul(x.flatten(1), W1.t()) + b + t.to(at::kDouble).unsqueeze(1) / 1000.0 * wt;
    return at::matmul(at::tanh(pre), W2.t());
  }
  std::vector<std::string> class_names() const override { return names; }
  std::vector<at::Tensor> parameters() override { return {W1, b, wt, W2}; }
  std::string describe() const override { return "toy"; }
};

}  // namespace daug::testing
