#pragma once
/// Retrieval mAP@K and classification AUC as DAug evaluates them (drjinying/DAug daug/main.py:245-316,
/// REFERENCE.md §1.4), plus Markdown/CSV table formatting in the paper's column order.
#include <daug/options.h>
#include <daug/tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace daug::clip {

enum class ApKind {
  released,  ///< AP = (1/#hits in top K) Σ_j j/p_j over the hits p_1<…<p_m (1-based); 0 with no hits (DAug)
  standard,  ///< AP@K = (1/min(K, R)) Σ_j j/p_j, R = #gallery items relevant for the class (IR-standard)
};
/// The TOML names of ApKind ("released", "standard"), for the `ap` option.
extern const Choices<ApKind> kApKinds;

/// AP of one ranked list: `hits[j]` is 1 if the item at rank j+1 is relevant. `relevant_total` is R (only used
/// by ApKind::standard).
double average_precision(const std::vector<int>& hits, ApKind kind, int64_t relevant_total = 0);

/// One row of a per-class table: a value per class (NaN = not computable), with the reason and the support.
struct ClassRow {
  std::string metric;               ///< e.g. "R→I mAP@5"
  std::vector<double> values;       ///< per class; NaN where not computable
  std::vector<int64_t> support;     ///< per class: #positive queries (retrieval) or #positive samples (AUC)
  std::vector<std::string> na;      ///< per class: "" or the reason, e.g. "no positives"
  double avg = 0;                   ///< mean over computable classes (NaN if none)
  double wavg = 0;                  ///< support-weighted mean over computable classes (NaN if none)
  void finish();                    ///< computes avg and wavg from values/support/na
};

/// Indices [Q,K] of the K most similar gallery items per query (cosine = dot of L2-normalised rows), computed
/// in chunks of `chunk` queries so a Q×G matrix is never held whole. Ties keep torch.topk's order.
at::Tensor topk_indices(const at::Tensor& query_emb, const at::Tensor& gallery_emb, int64_t k, int64_t chunk = 1024);

/// Per-query, per-class AP@K [Q,C] (double) from top-K indices [Q,K]: for query q and class c, the AP of q's list
/// with "relevant" = the gallery item has label c (0/1 labels [G,C]). retrieval_map averages it over the queries
/// positive for c.
at::Tensor retrieval_ap(const at::Tensor& topk_idx, const at::Tensor& gallery_labels, ApKind kind);

/// Per-class retrieval mAP@K from top-K indices [Q,K]: for class i, the queries are those with label i, an item
/// is relevant iff it has label i. `query_labels` [Q,C] and `gallery_labels` [G,C] are 0/1. A class with no
/// positive query is NaN with na = "no positives" (excluded from Avg/wAvg). Weights = #positive queries.
ClassRow retrieval_map(const at::Tensor& topk_idx, const at::Tensor& query_labels, const at::Tensor& gallery_labels,
                       ApKind kind, const std::string& metric_name);

/// ROC AUC by the Mann-Whitney statistic with average ranks for ties (= sklearn roc_auc_score). NaN when there
/// are no positives or no negatives.
double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels);

/// Per-class AUC of scores [N,C] against labels [N,C] (0/1; NaN entries are left out of that class).
/// Support = #positives (sklearn average='weighted'). Classes with no positives or no negatives are NaN.
ClassRow classification_auc(const at::Tensor& scores, const at::Tensor& labels, const std::string& metric_name);

/// Classification scores of L2-normalised image embeddings [N,D] against class-prompt embeddings [C,D], [N,C]
/// double, with s = exp(log_scale):
///  * released = true: sigmoid(s·cos) computed in float32, as the released model returns probabilities
///    (daug/model.py:134) and sklearn ranks them. Above a logit of ≈16.6 the float32 sigmoid is exactly 1.0, so
///    confident scores tie (the released AUC);
///  * released = false: the logits s·cos in double (exact ranks; the same AUC up to those ties).
at::Tensor class_scores(const at::Tensor& image_emb, const at::Tensor& class_emb, double log_scale, bool released);

/// Markdown table: | Metric | <class names...> | Avg | wAvg |, values with `digits` decimals, "n/a" cells,
/// and a footnote when any cell is n/a.
std::string markdown_table(const std::vector<ClassRow>& rows, const std::vector<std::string>& class_names,
                           int digits = 4);
/// CSV: metric,<class names...>,Avg,wAvg (empty cell where n/a), then one "support" row per metric.
std::string csv_table(const std::vector<ClassRow>& rows, const std::vector<std::string>& class_names);

}  // namespace daug::clip
