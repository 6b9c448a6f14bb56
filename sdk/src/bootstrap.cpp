// Bootstrap CIs over paired_items.json metrics (daug/bootstrap.h).
#include <daug/bootstrap.h>
#include <daug/error.h>
#include <daug/seed.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

namespace daug {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool is_01(double v) { return v == 0.0 || v == 1.0; }

// A metric restricted to a subset of its items (the paired ones), prepared once so that each draw is a linear pass:
// per class, the items sorted by score with their tie groups (macro_auc) or the members (macro_mean).
class Evaluator {
 public:
  Evaluator(const PairedMetric& m, const std::vector<size_t>& subset) : kind_(m.kind), n_(subset.size()) {
    if (kind_ == paired_kinds::kMean) {
      for (size_t k = 0; k < n_; ++k) values_.push_back(m.items[subset[k]].values[0]);
      return;
    }
    const size_t classes = n_ ? m.items[subset[0]].values.size() : 0;
    classes_.resize(classes);
    for (size_t c = 0; c < classes; ++c) {
      auto& entries = classes_[c];
      for (size_t k = 0; k < n_; ++k) {
        const auto& it = m.items[subset[k]];
        const double y = it.labels[c];
        if (kind_ == paired_kinds::kMacroAuc) {
          if (!std::isnan(y)) entries.push_back({k, it.values[c], y == 1.0, false});
        } else if (y == 1.0) {
          entries.push_back({k, it.values[c], true, false});
        }
      }
      if (kind_ != paired_kinds::kMacroAuc) continue;
      std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.v < b.v; });
      for (size_t e = 0; e < entries.size(); ++e)
        entries[e].group_end = e + 1 == entries.size() || entries[e + 1].v != entries[e].v;
    }
  }

  double operator()(const std::vector<uint32_t>& counts) const {
    auto w = [&](size_t k) { return counts.empty() ? 1.0 : static_cast<double>(counts[k]); };
    if (kind_ == paired_kinds::kMean) {
      double s = 0, ws = 0;
      for (size_t k = 0; k < n_; ++k) {
        s += w(k) * values_[k];
        ws += w(k);
      }
      return ws > 0 ? s / ws : kNaN;
    }
    double sum = 0;
    int used = 0;
    for (const auto& entries : classes_) {
      if (kind_ == paired_kinds::kMacroAuc) {
        // Mann-Whitney: every (positive, negative) pair counts 1 when the positive scores higher, 1/2 on a tie.
        double u = 0, pos = 0, neg = 0, gp = 0, gn = 0;
        for (const auto& e : entries) {
          (e.positive ? gp : gn) += w(e.k);
          if (!e.group_end) continue;
          u += gp * (neg + 0.5 * gn);
          pos += gp;
          neg += gn;
          gp = gn = 0;
        }
        if (pos > 0 && neg > 0) {
          sum += u / (pos * neg);
          ++used;
        }
      } else {
        double s = 0, ws = 0;
        for (const auto& e : entries) {
          s += w(e.k) * e.v;
          ws += w(e.k);
        }
        if (ws > 0) {
          sum += s / ws;
          ++used;
        }
      }
    }
    return used ? sum / used : kNaN;
  }

 private:
  struct Entry {
    size_t k;  // position in the subset
    double v;  // score (macro_auc) or value (macro_mean)
    bool positive;
    bool group_end;  // last entry of a run of equal scores
  };
  std::string kind_;
  size_t n_;
  std::vector<double> values_;
  std::vector<std::vector<Entry>> classes_;
};

// Percentile of sorted values with linear interpolation between order statistics (numpy's default).
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return kNaN;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

void finish(BootstrapInterval& out, std::vector<double>& draws, double level) {
  std::sort(draws.begin(), draws.end());
  out.defined_draws = static_cast<int64_t>(draws.size());
  out.lo = percentile(draws, (1.0 - level) / 2.0);
  out.hi = percentile(draws, (1.0 + level) / 2.0);
}

std::vector<size_t> all_items(const PairedMetric& m) {
  std::vector<size_t> idx(m.items.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  return idx;
}

void check_level(int64_t draws, double level) {
  DAUG_CHECK_AS(ConfigError, draws >= 0, "bootstrap draws must be >= 0, but got ", draws);
  DAUG_CHECK_AS(ConfigError, level > 0 && level < 1, "bootstrap CI level must be in (0, 1), but got ", level);
}

}  // namespace

void check_paired_metric(const PairedMetric& m, const std::string& where) {
  const std::string at = fmt::format("{}: metric '{}' ({})", where, m.name, m.kind);
  const bool mean = m.kind == paired_kinds::kMean, auc = m.kind == paired_kinds::kMacroAuc;
  DAUG_CHECK_AS(DataError, mean || auc || m.kind == paired_kinds::kMacroMean, where, ": metric '", m.name,
                "' has kind '", m.kind, "', but the kinds are mean, macro_auc and macro_mean");
  DAUG_CHECK_AS(DataError, !m.name.empty(), where, ": a metric has an empty name");
  std::unordered_set<std::string> ids;
  const size_t classes = m.items.empty() ? 0 : m.items[0].values.size();
  for (size_t i = 0; i < m.items.size(); ++i) {
    const auto& it = m.items[i];
    const std::string item = fmt::format("{}, item {} ('{}')", at, i, it.id);
    DAUG_CHECK_AS(DataError, !it.id.empty(), item, ": the id must not be empty");
    DAUG_CHECK_AS(DataError, ids.insert(it.id).second, item, ": the id appears twice; ids must be unique");
    if (mean) {
      DAUG_CHECK_AS(DataError, it.values.size() == 1 && it.labels.empty(), item, ": expected [id, value], but found ",
                    it.values.size(), " values and ", it.labels.size(), " labels");
      DAUG_CHECK_AS(DataError, std::isfinite(it.values[0]), item, ": expected a finite number, but found ",
                    it.values[0]);
      continue;
    }
    DAUG_CHECK_AS(DataError, it.values.size() == classes && it.labels.size() == classes && classes > 0, item,
                  ": expected [id, [", classes ? classes : 1, "+ values], [as many labels]] like item 0, but found ",
                  it.values.size(), " values and ", it.labels.size(), " labels");
    for (size_t c = 0; c < classes; ++c) {
      const double y = it.labels[c], v = it.values[c];
      if (auc) {
        DAUG_CHECK_AS(DataError, std::isnan(y) || is_01(y), item, ", class ", c,
                      ": a label must be 0, 1 or null, but found ", y);
        DAUG_CHECK_AS(DataError, std::isnan(y) || std::isfinite(v), item, ", class ", c,
                      ": the score must be a finite number where the label is not null, but found ", v);
      } else {
        DAUG_CHECK_AS(DataError, is_01(y), item, ", class ", c, ": membership must be 0 or 1, but found ", y);
        DAUG_CHECK_AS(DataError, y == 0.0 || std::isfinite(v), item, ", class ", c,
                      ": the value must be a finite number where membership is 1, but found ", v);
      }
    }
  }
}

PairedItems read_paired_items(const std::filesystem::path& file) {
  const std::string f = file.string();
  std::ifstream in(file);
  DAUG_CHECK_AS(DataError, in.good(), f, ": cannot open the paired items file");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: not valid JSON: {}", f, e.what()));
  }
  DAUG_CHECK_AS(DataError, j.is_object() && j.contains("format") && j["format"] == kPairedItemsFormat, f,
                ": expected an object with \"format\": \"", kPairedItemsFormat, "\", but found ",
                j.is_object() && j.contains("format") ? j["format"].dump() : std::string("no format"));
  DAUG_CHECK_AS(DataError, j.contains("metrics") && j["metrics"].is_array(), f,
                ": expected \"metrics\": [...] (an array of metrics)");
  auto number = [](const nlohmann::json& v, double& out) {
    if (v.is_null()) out = kNaN;
    else if (v.is_number()) out = v.get<double>();
    else return false;
    return true;
  };
  PairedItems out;
  std::unordered_set<std::string> names;
  for (size_t m = 0; m < j["metrics"].size(); ++m) {
    const auto& jm = j["metrics"][m];
    const std::string at = fmt::format("{}: metrics[{}]", f, m);
    DAUG_CHECK_AS(DataError,
                  jm.is_object() && jm.contains("name") && jm["name"].is_string() && jm.contains("kind") &&
                      jm["kind"].is_string() && jm.contains("items") && jm["items"].is_array(),
                  at, ": expected {\"name\": string, \"kind\": string, \"items\": [...]}, but found ",
                  jm.dump().substr(0, 120));
    PairedMetric pm{jm["name"].get<std::string>(), jm["kind"].get<std::string>(), {}};
    DAUG_CHECK_AS(DataError, names.insert(pm.name).second, at, ": metric '", pm.name, "' appears twice");
    const bool mean = pm.kind == paired_kinds::kMean;
    const char* shape = mean ? "[\"<id>\", <number>]" : "[\"<id>\", [numbers], [numbers or null]]";
    for (size_t i = 0; i < jm["items"].size(); ++i) {
      const auto& ji = jm["items"][i];
      const std::string item = fmt::format("{} ('{}', {}), item {}", at, pm.name, pm.kind, i);
      const bool ok_shape = ji.is_array() && ji.size() == (mean ? 2u : 3u) && ji[0].is_string() &&
                            (mean ? ji[1].is_number() : (ji[1].is_array() && ji[2].is_array()));
      DAUG_CHECK_AS(DataError, ok_shape, item, ": expected ", shape, ", but found ", ji.dump().substr(0, 120));
      PairedItem it{ji[0].get<std::string>(), {}, {}};
      if (mean) {
        it.values.push_back(ji[1].get<double>());
      } else {
        for (size_t part = 1; part <= 2; ++part)
          for (const auto& v : ji[part]) {
            double x = 0;
            DAUG_CHECK_AS(DataError, number(v, x), item, ": expected numbers or null in ", shape, ", but found ",
                          v.dump());
            (part == 1 ? it.values : it.labels).push_back(x);
          }
      }
      pm.items.push_back(std::move(it));
    }
    check_paired_metric(pm, f);
    out.metrics.push_back(std::move(pm));
  }
  return out;
}

double paired_metric_value(const PairedMetric& m, const std::vector<uint32_t>& counts) {
  DAUG_CHECK(counts.empty() || counts.size() == m.items.size(), "paired_metric_value: ", counts.size(), " counts for ",
             m.items.size(), " items of '", m.name, "'");
  check_paired_metric(m, "paired_metric_value");
  return Evaluator(m, all_items(m))(counts);
}

std::vector<uint32_t> bootstrap_counts(size_t n, uint64_t seed, uint64_t draw) {
  std::vector<uint32_t> counts(n, 0);
  if (n == 0) return counts;
  const uint64_t nn = n;
  const uint64_t threshold = (0 - nn) % nn;  // 2^64 mod n: values below it would favour small indices
  const uint64_t draw_seed = mix_seed(seed, draw);
  uint64_t t = 0;
  for (size_t j = 0; j < n; ++j) {
    uint64_t x = 0;
    do x = mix_seed(draw_seed, t++);
    while (x < threshold);
    ++counts[x % nn];
  }
  return counts;
}

BootstrapInterval bootstrap_interval(const PairedMetric& m, int64_t draws, uint64_t seed, double level) {
  check_level(draws, level);
  check_paired_metric(m, "bootstrap_interval");
  const Evaluator eval(m, all_items(m));
  BootstrapInterval out;
  out.draws = draws;
  out.estimate = eval({});
  std::vector<double> values;
  for (int64_t d = 0; d < draws; ++d) {
    const double v = eval(bootstrap_counts(m.items.size(), seed, static_cast<uint64_t>(d)));
    if (!std::isnan(v)) values.push_back(v);
  }
  finish(out, values, level);
  return out;
}

PairedDifference paired_difference(const PairedMetric& base, const PairedMetric& other, int64_t draws, uint64_t seed,
                                   double level) {
  check_level(draws, level);
  DAUG_CHECK_AS(DataError, base.kind == other.kind, "metric '", base.name, "' is '", base.kind,
                "' in one variant but '", other.kind, "' in another; a paired difference needs the same kind");
  check_paired_metric(base, "paired_difference");
  check_paired_metric(other, "paired_difference");
  std::unordered_map<std::string, size_t> other_index;
  for (size_t i = 0; i < other.items.size(); ++i) other_index.emplace(other.items[i].id, i);
  std::vector<size_t> bi, oi;
  for (size_t i = 0; i < base.items.size(); ++i) {
    auto it = other_index.find(base.items[i].id);
    if (it == other_index.end()) continue;
    bi.push_back(i);
    oi.push_back(it->second);
  }
  PairedDifference out;
  out.paired = bi.size();
  out.base_items = base.items.size();
  out.other_items = other.items.size();
  out.delta.draws = draws;
  const Evaluator eb(base, bi), eo(other, oi);
  out.base_value = eb({});
  out.other_value = eo({});
  out.delta.estimate = out.other_value - out.base_value;
  std::vector<double> values;
  for (int64_t d = 0; d < draws && !bi.empty(); ++d) {
    const auto counts = bootstrap_counts(bi.size(), seed, static_cast<uint64_t>(d));
    const double v = eo(counts) - eb(counts);
    if (!std::isnan(v)) values.push_back(v);
  }
  finish(out.delta, values, level);
  return out;
}

}  // namespace daug
