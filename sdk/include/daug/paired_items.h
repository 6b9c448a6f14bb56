#pragma once
/// paired_items.json: the per-item values behind a stage's metrics, so that `daug ablate` and sweeps can give a
/// paired bootstrap confidence interval of each variant's difference from the first one (items are paired across
/// variants by id; see daug/bootstrap.h for the statistics). A stage MAY publish it in its output directory next
/// to metrics.json, declared as `daug::paired_items_artifact()` in outputs(). Header-only: no LibTorch, no JSON
/// library needed to write it.
///
/// Format (daug.paired_items/1):
///   {"format": "daug.paired_items/1",
///    "metrics": [
///      {"name": "<dotted key of this stage's metrics.json, e.g. localization.Overall.pointing_hit_rate>",
///       "kind": "mean", "items": [["<item id>", <value>], ...]},
///      {"name": "auc.Avg", "kind": "macro_auc", "items": [["<id>", [s_0, ..., s_{C-1}], [y_0, ..., y_{C-1}]], ...]},
///      {"name": "r2i_map@5.Avg", "kind": "macro_mean", "items": [["<id>", [v_0, ..., v_{C-1}], [m_0, ..., m_{C-1}]], ...]}
///    ]}
/// Kinds (every item of a metric has the same C; ids are unique within a metric):
///  * mean:       metric = mean of the values (all numbers).
///  * macro_auc:  y_c is 1 (positive), 0 (negative) or null (item left out of class c). Per class c, the ROC AUC of
///                the scores s_c over the items with y_c not null (ties count 1/2, i.e. the Mann-Whitney statistic
///                with average ranks = sklearn roc_auc_score); metric = mean over the classes that have both a
///                positive and a negative. A score may be null only where y_c is null.
///  * macro_mean: m_c is 1 when the item belongs to class c, else 0. Per class c, the mean of v_c over its members;
///                metric = mean over the classes that have at least one member (e.g. retrieval mAP@K Avg: the items
///                are queries, m_c = "the query is positive for c", v_c = the query's AP@K for class c). v_c may be
///                null where m_c is 0.
/// The metric computed from all items equals the value the stage wrote under `name` in metrics.json.
///
/// Example (in a Stage's run()):
///   daug::PairedItems p;
///   auto& hits = p.add("localization.Overall.pointing_hit_rate", daug::paired_kinds::kMean);
///   for (...) hits.items.push_back({id, {hit ? 1.0 : 0.0}, {}});
///   daug::write_file_atomic(ctx.output(daug::artifacts::kPairedItems), p.to_json());
#include <daug/artifact.h>
#include <daug/error.h>

#include <charconv>
#include <cmath>
#include <string>
#include <vector>

namespace daug {

inline constexpr const char* kPairedItemsFormat = "daug.paired_items/1";
inline constexpr const char* kPairedItemsFile = "paired_items.json";

namespace artifacts {
inline constexpr const char* kPairedItems = "paired_items";  ///< paired_items.json (daug/paired_items.h)
}  // namespace artifacts

namespace paired_kinds {
inline constexpr const char* kMean = "mean";
inline constexpr const char* kMacroAuc = "macro_auc";
inline constexpr const char* kMacroMean = "macro_mean";
}  // namespace paired_kinds

/// The paired_items artifact as a stage declares it in outputs().
inline Artifact paired_items_artifact() {
  return {artifacts::kPairedItems, kPairedItemsFile,
          "per-item values behind metrics.json (daug.paired_items/1), for paired bootstrap CIs in daug ablate"};
}

/// One item of a metric. mean: values = {v}, labels empty. macro_auc: values = scores, labels = y (NaN = null).
/// macro_mean: values = v (NaN = null), labels = membership m (0/1).
struct PairedItem {
  std::string id;
  std::vector<double> values;
  std::vector<double> labels;
};

/// One metric: its metrics.json key (without the stage prefix), its kind, and its items.
struct PairedMetric {
  std::string name;
  std::string kind;
  std::vector<PairedItem> items;
};

/// A whole paired_items.json; to_json() writes the format above (NaN/inf → null; numbers round-trip exactly).
struct PairedItems {
  std::vector<PairedMetric> metrics;

  /// Appends an empty metric; the reference is valid until the next add().
  PairedMetric& add(const std::string& name, const std::string& kind) {
    metrics.push_back(PairedMetric{name, kind, {}});
    return metrics.back();
  }

  std::string to_json() const {
    std::string out = "{\"format\": ";
    quote(out, kPairedItemsFormat);
    out += ",\n \"metrics\": [";
    for (size_t m = 0; m < metrics.size(); ++m) {
      const auto& mt = metrics[m];
      const bool scalar = mt.kind == paired_kinds::kMean;
      DAUG_CHECK(scalar || mt.kind == paired_kinds::kMacroAuc || mt.kind == paired_kinds::kMacroMean,
                 "paired items: metric '", mt.name, "' has kind '", mt.kind,
                 "', but the kinds are mean, macro_auc and macro_mean");
      out += m ? ",\n  {\"name\": " : "\n  {\"name\": ";
      quote(out, mt.name);
      out += ", \"kind\": ";
      quote(out, mt.kind);
      out += ", \"items\": [";
      for (size_t i = 0; i < mt.items.size(); ++i) {
        const auto& it = mt.items[i];
        out += i ? ",\n   [" : "\n   [";
        quote(out, it.id);
        if (scalar) {
          DAUG_CHECK(it.values.size() == 1 && it.labels.empty(), "paired items: metric '", mt.name, "' (mean), item '",
                     it.id, "' must hold one value and no labels, but holds ", it.values.size(), " and ",
                     it.labels.size());
          out += ", ";
          number(out, it.values[0]);
        } else {
          DAUG_CHECK(it.values.size() == it.labels.size(), "paired items: metric '", mt.name, "', item '", it.id,
                     "' has ", it.values.size(), " values but ", it.labels.size(), " labels");
          for (const auto* v : {&it.values, &it.labels}) {
            out += ", [";
            for (size_t c = 0; c < v->size(); ++c) {
              if (c) out += ", ";
              number(out, (*v)[c]);
            }
            out += "]";
          }
        }
        out += "]";
      }
      out += mt.items.empty() ? "]}" : "\n  ]}";
    }
    out += metrics.empty() ? "]}\n" : "\n ]}\n";
    return out;
  }

 private:
  static void quote(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20) {
        static const char* hex = "0123456789abcdef";
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
      } else {
        out += static_cast<char>(c);
      }
    }
    out += '"';
  }
  static void number(std::string& out, double v) {
    if (!std::isfinite(v)) {
      out += "null";
      return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest text that reads back as v, locale-free
    out.append(buf, r.ptr);
  }
};

}  // namespace daug
