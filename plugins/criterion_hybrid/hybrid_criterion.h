#pragma once
/// `hybrid` Criterion: DAug's hybrid contrastive loss (Jin et al., drjinying/DAug daug/model.py:125-147):
///   L = w·L_CLIP + (1 − w)·mean_{b,c} BCEWithLogits(s_c·cos(I_b, C_c), y_bc)
/// with C_c the class-prompt embeddings (recomputed by the trainer every step), s_c = exp(4.602) fixed by
/// default. w = 0.7 for classification runs, 0.8 for retrieval runs (daug/configs/abl/*.yaml).
#include "clip_scale.h"

#include <daug/criterion.h>
#include <daug/options.h>

#include <memory>
#include <string>

namespace daug {
class BuildContext;
}

namespace daug::plugins {

struct HybridCriterionOptions {
  double w = 0.7;                        ///< weight of the CLIP term
  clip::ScaleMode scale = clip::ScaleMode::fixed;        ///< CLIP-term scale: fixed (exp(logit_scale)) or backbone
  double logit_scale = 4.602;            ///< log of the fixed CLIP-term scale
  clip::ScaleMode class_scale = clip::ScaleMode::fixed;  ///< image-to-class scale: fixed (exp(class_logit_scale)) or backbone
  double class_logit_scale = 4.602;      ///< log of the fixed image-to-class scale (released 4.602)
  void visit(OptionVisitor& v);
};

class HybridCriterion final : public Criterion {
 public:
  using Options = HybridCriterionOptions;
  /// `table`: the config table this criterion is built from (error messages name it).
  explicit HybridCriterion(Options opts, const std::string& table = "criterion");
  static std::shared_ptr<Criterion> create(Options opts, BuildContext& ctx);
  CriterionOutput compute(const CriterionInput& in) override;
  bool needs_class_embeddings() const override { return true; }
  std::string describe() const override;

 private:
  Options opts_;
};

}  // namespace daug::plugins
