// Sweeps and ablation sets: expansion, running, and the side-by-side comparison table.
#include <daug/artifact.h>
#include <daug/bootstrap.h>
#include <daug/checkpoint.h>
#include <daug/core/config_loader.h>
#include <daug/core/distributed.h>
#include <daug/core/sweep.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/paired_items.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <exception>
#include <fstream>
#include <sstream>

namespace daug::core {
namespace {

std::string value_text(const toml::node& n) {
  std::ostringstream os;
  os << toml::table{{"v", n}};
  std::string s = os.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s.substr(s.find(" = ") + 3);
}

void flatten(const nlohmann::json& j, const std::string& prefix, std::vector<std::pair<std::string, double>>& out) {
  if (j.is_number()) {
    out.emplace_back(prefix, j.get<double>());
  } else if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) flatten(it.value(), prefix + "." + it.key(), out);
  }
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string signed4(double v) { return std::isnan(v) ? std::string("n/a") : fmt::format("{:+.4f}", v); }

// One paired difference of the comparison: `metric` ("<stage>.<name>") of `variant` minus the reference variant's.
struct PairedRow {
  std::string metric;
  size_t variant;  // index into the rows
  std::string variant_name;
  PairedDifference d;
};

struct PairedSection {
  std::string reference;  // the first variant that ran
  std::vector<PairedRow> rows;
  std::vector<std::string> notes;  // stages or metrics without a CI, and why
};

// Paired bootstrap differences from the first variant that ran, for every stage that wrote paired_items.json in
// every variant that ran.
template <class Row>
PairedSection paired_section(const std::vector<Row>& rows, const BootstrapOptions& opt,
                             const std::vector<std::string>& column_filters) {
  PairedSection out;
  std::vector<size_t> ok;
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i].status == "ok") ok.push_back(i);
  if (opt.draws <= 0 || ok.size() < 2) return out;
  out.reference = rows[ok[0]].name;
  for (const auto& [stage, dir0] : rows[ok[0]].stage_dirs) {
    std::vector<std::string> missing;
    std::vector<std::filesystem::path> files;
    for (size_t i : ok) {
      std::filesystem::path file;
      for (const auto& [s, d] : rows[i].stage_dirs)
        if (s == stage) file = d / kPairedItemsFile;
      if (file.empty() || !std::filesystem::exists(file)) missing.push_back(rows[i].name);
      files.push_back(file);
    }
    if (missing.size() == ok.size()) continue;
    if (!missing.empty()) {
      out.notes.push_back(
          fmt::format("{}: no CI, {} is missing in {}", stage, kPairedItemsFile, fmt::join(missing, ", ")));
      continue;
    }
    std::vector<PairedItems> items;
    for (const auto& f : files) items.push_back(read_paired_items(f));
    for (const auto& base : items[0].metrics) {
      const std::string key = stage + "." + base.name;
      bool keep = column_filters.empty();
      for (const auto& f : column_filters) keep = keep || key.find(f) != std::string::npos;
      if (!keep) continue;
      for (size_t v = 1; v < ok.size(); ++v) {
        const auto& ms = items[v].metrics;
        auto it = std::find_if(ms.begin(), ms.end(), [&](const PairedMetric& m) { return m.name == base.name; });
        if (it == ms.end()) {
          out.notes.push_back(
              fmt::format("{}: no CI for {}, whose {} does not list it", key, rows[ok[v]].name, files[v].string()));
          continue;
        }
        try {
          out.rows.push_back({key, ok[v], rows[ok[v]].name, paired_difference(base, *it, opt.draws, opt.seed)});
        } catch (const DataError& e) {
          throw DataError(fmt::format("{} vs {}: {}", files[0].string(), files[v].string(), e.what()));
        }
      }
    }
  }
  return out;
}

std::string paired_markdown(const PairedSection& p, const BootstrapOptions& opt) {
  if (p.rows.empty() && p.notes.empty()) return "";
  std::string md = fmt::format(
      "\n### Paired bootstrap: difference from {}\n\nΔ = variant − {} on the items (test images/queries) both have, "
      "paired by id; 95% CI: percentile interval over {} resamples of those items with replacement (seed {}).\n\n",
      p.reference, p.reference, opt.draws, opt.seed);
  if (!p.rows.empty()) md += "| metric | variant | Δ | 95% CI | n items |\n|---|---|---:|---:|---:|\n";
  bool partial = false;
  for (const auto& r : p.rows) {
    std::string n = std::to_string(r.d.paired);
    if (r.d.paired < r.d.base_items || r.d.paired < r.d.other_items) {
      n += fmt::format(" (of {} / {})", r.d.base_items, r.d.other_items);
      partial = true;
    }
    md += fmt::format("| {} | {} | {} | [{}, {}] | {} |\n", r.metric, r.variant_name, signed4(r.d.delta.estimate),
                      signed4(r.d.delta.lo), signed4(r.d.delta.hi), n);
  }
  if (partial)
    md +=
        "\n\"n of a / b\": the variants share only n items, of a in the reference and b in the variant; Δ and the CI "
        "use those n.\n";
  for (const auto& note : p.notes) md += "\n" + note + "\n";
  return md;
}

}  // namespace

std::vector<Variant> expand_sweep(const ConfigDocument& doc, const std::string& base_name) {
  const auto* sweep = doc.root.get("sweep");
  if (!sweep) {
    auto c = clone(doc);
    return {Variant{base_name, c, {}}};
  }
  auto where = [&](const std::string& key) {
    auto it = doc.locations.find(key.empty() ? "sweep" : "sweep." + key);
    return it == doc.locations.end() ? doc.main_file : it->second.str();
  };
  if (!sweep->is_table())
    throw ConfigError(fmt::format("{}: [sweep] must be a table of \"key.path\" = [values]", where("")));
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  for (const auto& [k, v] : *sweep->as_table()) {
    std::string key(k.str());
    if (!v.is_array() || v.as_array()->empty())
      throw ConfigError(fmt::format("{}: [sweep].\"{}\" must be a non-empty array of values to try", where(key), key));
    std::vector<std::string> values;
    for (const auto& el : *v.as_array()) values.push_back(value_text(el));
    axes.emplace_back(key, values);
  }
  std::vector<Variant> out;
  std::vector<size_t> idx(axes.size(), 0);
  while (true) {
    Variant var;
    var.doc = clone(doc);
    var.doc->root.erase("sweep");
    std::vector<std::string> parts;
    for (size_t a = 0; a < axes.size(); ++a) {
      std::string assign = axes[a].first + "=" + axes[a].second[idx[a]];
      apply_override(*var.doc, assign);
      var.overrides.push_back(assign);
      parts.push_back(assign);
    }
    var.name = fmt::format("{}", fmt::join(parts, ","));
    out.push_back(std::move(var));
    size_t a = 0;
    for (; a < axes.size(); ++a) {
      if (++idx[a] < axes[a].second.size()) break;
      idx[a] = 0;
    }
    if (a == axes.size()) break;
  }
  return out;
}

std::vector<std::pair<std::string, double>> collect_metrics(const RunResult& run) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [stage, dir] : run.stage_dirs) {
    auto file = dir / kMetricsFile;
    if (!std::filesystem::exists(file)) continue;
    std::ifstream in(file);
    nlohmann::json j;
    try {
      in >> j;
    } catch (const std::exception& e) {
      throw DataError(fmt::format("{}: not valid JSON: {}", file.string(), e.what()));
    }
    flatten(j, stage, out);
  }
  return out;
}

std::string run_variants(const PluginLoader& loader, const std::vector<Variant>& variants,
                         const std::filesystem::path& out_dir, const RunOptions& options,
                         const std::vector<std::string>& column_filters, const BootstrapOptions& bootstrap) {
  // Under a distributed launch the ranks join once for every variant: joining again per variant races with rank 0
  // closing the previous rendezvous store on the same port.
  const auto dist = dist_env_from();
  const bool main_rank = !dist || dist->rank == 0;
  const auto joined = dist && !variants.empty() ? join_distributed(variants.front().doc) : nullptr;
  if (main_rank) std::filesystem::create_directories(out_dir);
  struct Row {
    std::string name;
    std::string status;
    std::string run_dir;
    std::vector<std::pair<std::string, double>> metrics;
    std::vector<std::pair<std::string, std::filesystem::path>> stage_dirs;
  };
  std::vector<Row> rows;
  std::vector<std::string> columns;
  for (const auto& v : variants) {
    log::info("=== variant {} ===", v.name);
    Row row{v.name, "ok", "", {}, {}};
    try {
      auto result = run_pipeline(loader, v.doc, v.overrides, options);
      row.run_dir = result.run_dir.string();
      row.stage_dirs = result.stage_dirs;
      for (auto& [k, val] : collect_metrics(result)) {
        bool keep = column_filters.empty();
        for (const auto& f : column_filters) keep = keep || k.find(f) != std::string::npos;
        if (!keep) continue;
        if (std::find(columns.begin(), columns.end(), k) == columns.end()) columns.push_back(k);
        row.metrics.emplace_back(k, val);
      }
    } catch (const ConfigError& e) {
      // A configuration mistake (e.g. a swept key in a misspelt table) is not a result: stop the sweep.
      throw ConfigError(fmt::format("sweep variant {}: {}", v.name, e.what()));
    } catch (const std::exception& e) {
      // On several ranks a failed variant leaves the collectives out of step: the sweep stops (resume it later).
      if (dist) throw;
      row.status = std::string("failed: ") + e.what();
      log::error("variant {} failed: {}", v.name, e.what());
    }
    rows.push_back(std::move(row));
  }
  if (!main_rank) return "";
  // Paired bootstrap CIs; a malformed paired_items.json still leaves the plain comparison written.
  PairedSection paired;
  std::exception_ptr paired_error;
  try {
    paired = paired_section(rows, bootstrap, column_filters);
  } catch (const DataError&) {
    paired_error = std::current_exception();
  }
  auto value_of = [](const Row& r, const std::string& c) -> std::string {
    for (const auto& [k, v] : r.metrics)
      if (k == c) return fmt::format("{:.4f}", v);
    return "";
  };
  // CSV columns of the paired differences, in table order.
  std::vector<std::string> paired_metrics;
  for (const auto& pr : paired.rows)
    if (std::find(paired_metrics.begin(), paired_metrics.end(), pr.metric) == paired_metrics.end())
      paired_metrics.push_back(pr.metric);
  // Markdown: one row per variant, one column per metric.
  std::string sep;
  for (size_t i = 0; i < columns.size(); ++i) sep += "---:|";
  std::string md = fmt::format("| variant | status | {} |\n|---|---|{}\n", fmt::join(columns, " | "), sep);
  std::string csv = "variant,status,run_dir";
  for (const auto& c : columns) csv += "," + csv_field(c);
  for (const auto& c : paired_metrics)
    for (const auto& h : {"Δ " + c, "Δ " + c + " lo95", "Δ " + c + " hi95", c + " paired n"}) csv += "," + csv_field(h);
  csv += "\n";
  nlohmann::ordered_json js = nlohmann::ordered_json::array();
  for (size_t ri = 0; ri < rows.size(); ++ri) {
    const auto& r = rows[ri];
    std::vector<std::string> vals;
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& c : columns) vals.push_back(value_of(r, c));
    for (const auto& [k, v] : r.metrics) m[k] = v;
    md += fmt::format("| {} | {} | {} |\n", r.name, r.status.substr(0, 60), fmt::join(vals, " | "));
    csv += csv_field(r.name) + "," + csv_field(r.status) + "," + csv_field(r.run_dir);
    for (const auto& v : vals) csv += "," + v;
    nlohmann::ordered_json pj = nlohmann::ordered_json::object();
    for (const auto& c : paired_metrics) {
      auto it = std::find_if(paired.rows.begin(), paired.rows.end(),
                             [&](const PairedRow& p) { return p.metric == c && p.variant == ri; });
      if (it == paired.rows.end()) {
        csv += ",,,,";
        continue;
      }
      const auto& d = it->d;
      auto num = [](double v) { return std::isnan(v) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(v); };
      auto cell = [](double v) { return std::isnan(v) ? std::string() : fmt::format("{:.6f}", v); };
      csv += fmt::format(",{},{},{},{}", cell(d.delta.estimate), cell(d.delta.lo), cell(d.delta.hi), d.paired);
      pj[c] = {{"reference", paired.reference},
               {"delta", num(d.delta.estimate)},
               {"ci95", {num(d.delta.lo), num(d.delta.hi)}},
               {"value", num(d.other_value)},
               {"reference_value", num(d.base_value)},
               {"paired_items", d.paired},
               {"items", d.other_items},
               {"reference_items", d.base_items},
               {"draws", d.delta.draws},
               {"defined_draws", d.delta.defined_draws},
               {"seed", bootstrap.seed}};
    }
    csv += "\n";
    nlohmann::ordered_json row = {{"variant", r.name}, {"status", r.status}, {"run_dir", r.run_dir}, {"metrics", m}};
    if (!pj.empty()) row["paired_bootstrap"] = pj;
    js.push_back(row);
  }
  md += paired_markdown(paired, bootstrap);
  write_file_atomic(out_dir / "comparison.md", md);
  write_file_atomic(out_dir / "comparison.csv", csv);
  write_file_atomic(out_dir / "comparison.json", js.dump(2) + "\n");
  if (paired_error) std::rethrow_exception(paired_error);
  return md;
}

}  // namespace daug::core
