#include "clip_metrics.h"

#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace daug::clip {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

const Choices<ApKind> kApKinds = choices<ApKind>({{"released", ApKind::released}, {"standard", ApKind::standard}});

double average_precision(const std::vector<int>& hits, ApKind kind, int64_t relevant_total) {
  double num = 0;
  int64_t found = 0;
  for (size_t j = 0; j < hits.size(); ++j) {
    if (!hits[j]) continue;
    ++found;
    num += static_cast<double>(found) / static_cast<double>(j + 1);
  }
  if (kind == ApKind::released) return found == 0 ? 0.0 : num / static_cast<double>(found);
  const int64_t denom = std::min<int64_t>(static_cast<int64_t>(hits.size()), relevant_total);
  return denom <= 0 ? 0.0 : num / static_cast<double>(denom);
}

void ClassRow::finish() {
  double s = 0, ws = 0, w = 0;
  int n = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) continue;
    s += values[i];
    ++n;
    ws += values[i] * static_cast<double>(support[i]);
    w += static_cast<double>(support[i]);
  }
  avg = n ? s / n : kNaN;
  wavg = w > 0 ? ws / w : kNaN;
}

at::Tensor topk_indices(const at::Tensor& query_emb, const at::Tensor& gallery_emb, int64_t k, int64_t chunk) {
  DAUG_CHECK(query_emb.dim() == 2 && gallery_emb.dim() == 2 && query_emb.size(1) == gallery_emb.size(1),
             "retrieval needs query [Q,D] and gallery [G,D] embeddings, but got ", query_emb.sizes(), " and ",
             gallery_emb.sizes());
  DAUG_CHECK(k >= 1 && k <= gallery_emb.size(0), "K must be in [1, gallery size = ", gallery_emb.size(0),
             "], but got ", k);
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < query_emb.size(0); s += chunk) {
    auto q = query_emb.narrow(0, s, std::min(chunk, query_emb.size(0) - s));
    auto sim = q.mm(gallery_emb.t());
    parts.push_back(std::get<1>(sim.topk(k, 1, /*largest=*/true, /*sorted=*/true)).cpu());
  }
  return at::cat(parts, 0);
}

at::Tensor retrieval_ap(const at::Tensor& topk_idx, const at::Tensor& gallery_labels, ApKind kind) {
  DAUG_CHECK(topk_idx.dim() == 2 && gallery_labels.dim() == 2,
             "retrieval_ap: shapes must be idx [Q,K] and gallery "
             "labels [G,C], but got ",
             topk_idx.sizes(), " and ", gallery_labels.sizes());
  const int64_t q = topk_idx.size(0), k = topk_idx.size(1), c = gallery_labels.size(1);
  auto gl = (gallery_labels.cpu().to(at::kFloat) > 0.5).to(at::kDouble);
  auto hits = gl.index_select(0, topk_idx.cpu().reshape({-1}).to(at::kLong)).view({q, k, c});  // [Q,K,C]
  auto rank = at::arange(1, k + 1, at::kDouble).view({1, k, 1});
  auto prec = hits.cumsum(1) / rank;
  auto num = (hits * prec).sum(1);  // [Q,C]
  if (kind == ApKind::released) {
    auto nh = hits.sum(1);
    return at::where(nh > 0, num / nh.clamp_min(1), at::zeros_like(num));
  }
  auto r = gl.sum(0, true).clamp_max(static_cast<double>(k));  // [1,C] = min(K, R)
  return at::where(r > 0, num / r.clamp_min(1), at::zeros_like(num));
}

ClassRow retrieval_map(const at::Tensor& topk_idx, const at::Tensor& query_labels, const at::Tensor& gallery_labels,
                       ApKind kind, const std::string& metric_name) {
  DAUG_CHECK(topk_idx.dim() == 2 && query_labels.dim() == 2 && gallery_labels.dim() == 2 &&
                 topk_idx.size(0) == query_labels.size(0) && query_labels.size(1) == gallery_labels.size(1),
             "retrieval_map: shapes must be idx [Q,K], query labels [Q,C], gallery labels [G,C], but got ",
             topk_idx.sizes(), ", ", query_labels.sizes(), ", ", gallery_labels.sizes());
  const int64_t c = query_labels.size(1);
  auto ql = (query_labels.cpu().to(at::kFloat) > 0.5).to(at::kDouble);
  auto ap = retrieval_ap(topk_idx, gallery_labels, kind);
  auto n_pos = ql.sum(0);                // [C]
  auto ap_sum = (ap * ql).sum(0);        // [C]
  ClassRow row;
  row.metric = metric_name;
  for (int64_t i = 0; i < c; ++i) {
    const auto n = static_cast<int64_t>(n_pos[i].item<double>());
    row.support.push_back(n);
    if (n == 0) {
      row.values.push_back(kNaN);
      row.na.push_back("no positives");
    } else {
      row.values.push_back(ap_sum[i].item<double>() / static_cast<double>(n));
      row.na.push_back("");
    }
  }
  row.finish();
  return row;
}

double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels) {
  DAUG_CHECK(scores.size() == labels.size(), "roc_auc: ", scores.size(), " scores but ", labels.size(), " labels");
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double rank_sum_pos = 0;
  int64_t n_pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j + 1)) / 2.0;  // 1-based
    for (size_t t = i; t <= j; ++t)
      if (labels[order[t]]) {
        rank_sum_pos += avg_rank;
        ++n_pos;
      }
    i = j + 1;
  }
  const int64_t n_neg = static_cast<int64_t>(n) - n_pos;
  if (n_pos == 0 || n_neg == 0) return kNaN;
  const double u = rank_sum_pos - static_cast<double>(n_pos) * static_cast<double>(n_pos + 1) / 2.0;
  return u / (static_cast<double>(n_pos) * static_cast<double>(n_neg));
}

at::Tensor class_scores(const at::Tensor& image_emb, const at::Tensor& class_emb, double log_scale, bool released) {
  DAUG_CHECK(image_emb.dim() == 2 && class_emb.dim() == 2 && image_emb.size(1) == class_emb.size(1),
             "class scores need image [N,D] and class [C,D] embeddings, but got ", image_emb.sizes(), " and ",
             class_emb.sizes());
  if (!released) return image_emb.to(at::kDouble).mm(class_emb.to(at::kDouble).t()) * std::exp(log_scale);
  // float32 throughout, as the released forward: exp(logit_scale) · x @ tcᵀ, then .sigmoid().
  const auto scale = static_cast<float>(std::exp(static_cast<float>(log_scale)));
  auto logits = image_emb.to(at::kFloat).mm(class_emb.to(at::kFloat).t()) * scale;
  return at::sigmoid(logits).to(at::kDouble);
}

ClassRow classification_auc(const at::Tensor& scores, const at::Tensor& labels, const std::string& metric_name) {
  DAUG_CHECK(scores.dim() == 2 && scores.sizes() == labels.sizes(),
             "classification_auc: scores and labels must both be [N,C], but got ", scores.sizes(), " and ",
             labels.sizes());
  auto s = scores.cpu().to(at::kDouble).contiguous();
  auto l = labels.cpu().to(at::kDouble).contiguous();
  auto sa = s.accessor<double, 2>();
  auto la = l.accessor<double, 2>();
  ClassRow row;
  row.metric = metric_name;
  for (int64_t c = 0; c < s.size(1); ++c) {
    std::vector<double> sc;
    std::vector<int> lb;
    for (int64_t i = 0; i < s.size(0); ++i) {
      if (std::isnan(la[i][c])) continue;
      sc.push_back(sa[i][c]);
      lb.push_back(la[i][c] > 0.5 ? 1 : 0);
    }
    const int64_t pos = std::count(lb.begin(), lb.end(), 1);
    const int64_t neg = static_cast<int64_t>(lb.size()) - pos;
    row.support.push_back(pos);
    if (pos == 0 || neg == 0) {
      row.values.push_back(kNaN);
      row.na.push_back(pos == 0 ? "no positives" : "no negatives");
    } else {
      row.values.push_back(roc_auc(sc, lb));
      row.na.push_back("");
    }
  }
  row.finish();
  return row;
}

namespace {
std::string cell(double v, int digits) { return std::isnan(v) ? std::string("n/a") : fmt::format("{:.{}f}", v, digits); }
}  // namespace

std::string markdown_table(const std::vector<ClassRow>& rows, const std::vector<std::string>& class_names,
                           int digits) {
  std::string out = "| Metric |";
  for (const auto& n : class_names) out += " " + n + " |";
  out += " Avg | wAvg |\n|---|";
  for (size_t i = 0; i < class_names.size() + 2; ++i) out += "---:|";
  out += "\n";
  bool any_na = false;
  std::vector<std::string> reasons;
  for (const auto& r : rows) {
    DAUG_CHECK(r.values.size() == class_names.size(), "table row '", r.metric, "' has ", r.values.size(),
               " values for ", class_names.size(), " classes");
    out += "| " + r.metric + " |";
    for (size_t i = 0; i < r.values.size(); ++i) {
      if (std::isnan(r.values[i])) {
        any_na = true;
        out += " n/a (" + r.na[i] + ") |";
        if (std::find(reasons.begin(), reasons.end(), r.na[i]) == reasons.end()) reasons.push_back(r.na[i]);
      } else {
        out += " " + cell(r.values[i], digits) + " |";
      }
    }
    out += " " + cell(r.avg, digits) + " | " + cell(r.wavg, digits) + " |\n";
  }
  if (any_na)
    out += "\nn/a: the metric is undefined for that class on this evaluation set (no positive queries/samples, or "
           "no negatives for AUC); such classes are excluded from Avg and wAvg.\n";
  return out;
}

std::string csv_table(const std::vector<ClassRow>& rows, const std::vector<std::string>& class_names) {
  auto quote = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char ch : s) {
      if (ch == '"') q += '"';
      q += ch;
    }
    return q + "\"";
  };
  std::string out = "metric";
  for (const auto& n : class_names) out += "," + quote(n);
  out += ",Avg,wAvg\n";
  auto num = [](double v) { return std::isnan(v) ? std::string() : fmt::format("{:.6f}", v); };
  for (const auto& r : rows) {
    out += quote(r.metric);
    for (double v : r.values) out += "," + num(v);
    out += "," + num(r.avg) + "," + num(r.wavg) + "\n";
  }
  for (const auto& r : rows) {
    out += quote(r.metric + " support");
    for (auto s : r.support) out += "," + std::to_string(s);
    out += ",,\n";
  }
  return out;
}

}  // namespace daug::clip
