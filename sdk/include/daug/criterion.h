#pragma once
/// Criterion: the training loss of the backbone.
#include <daug/component.h>
#include <daug/tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace daug {

/// Inputs of one loss evaluation. Embeddings are L2-normalised by the caller.
struct CriterionInput {
  const at::Tensor& image_emb;    ///< [B,D]
  const at::Tensor& text_emb;     ///< [B,D] paired reports
  const at::Tensor& class_emb;    ///< [K,D] class-prompt embeddings; undefined unless needs_class_embeddings()
  const at::Tensor& labels;       ///< [B,K] float 0/1
  const at::Tensor& logit_scale;  ///< scalar log-scale from the backbone
};

struct CriterionOutput {
  at::Tensor loss;                                      ///< scalar, differentiable
  /// Named components for logging, as 0-dim tensors (detached; the trainer reads them every N steps, so a
  /// criterion never waits for the device to produce them).
  std::vector<std::pair<std::string, at::Tensor>> parts;
};

class DAUG_SDK_API Criterion : public Component {
 public:
  static constexpr const char* kInterface = "Criterion";
  ~Criterion() override;
  virtual CriterionOutput compute(const CriterionInput& in) = 0;
  /// True if compute() needs class_emb (the trainer then embeds the class prompts every step).
  virtual bool needs_class_embeddings() const { return false; }
};

}  // namespace daug
