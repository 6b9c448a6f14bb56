// Sweeps and ablation sets: expansion, running, and the side-by-side comparison table.
#include <daug/checkpoint.h>
#include <daug/core/config_loader.h>
#include <daug/core/distributed.h>
#include <daug/core/sweep.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/artifact.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

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
                         const std::vector<std::string>& column_filters) {
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
  };
  std::vector<Row> rows;
  std::vector<std::string> columns;
  for (const auto& v : variants) {
    log::info("=== variant {} ===", v.name);
    Row row{v.name, "ok", "", {}};
    try {
      auto result = run_pipeline(loader, v.doc, v.overrides, options);
      row.run_dir = result.run_dir.string();
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
  auto value_of = [](const Row& r, const std::string& c) -> std::string {
    for (const auto& [k, v] : r.metrics)
      if (k == c) return fmt::format("{:.4f}", v);
    return "";
  };
  // Markdown: one row per variant, one column per metric.
  std::string sep;
  for (size_t i = 0; i < columns.size(); ++i) sep += "---:|";
  std::string md = fmt::format("| variant | status | {} |\n|---|---|{}\n", fmt::join(columns, " | "), sep);
  std::string csv = "variant,status,run_dir";
  for (const auto& c : columns) csv += "," + csv_field(c);
  csv += "\n";
  nlohmann::ordered_json js = nlohmann::ordered_json::array();
  for (const auto& r : rows) {
    std::vector<std::string> vals;
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& c : columns) vals.push_back(value_of(r, c));
    for (const auto& [k, v] : r.metrics) m[k] = v;
    md += fmt::format("| {} | {} | {} |\n", r.name, r.status.substr(0, 60), fmt::join(vals, " | "));
    csv += csv_field(r.name) + "," + csv_field(r.status) + "," + csv_field(r.run_dir);
    for (const auto& v : vals) csv += "," + v;
    csv += "\n";
    js.push_back({{"variant", r.name}, {"status", r.status}, {"run_dir", r.run_dir}, {"metrics", m}});
  }
  write_file_atomic(out_dir / "comparison.md", md);
  write_file_atomic(out_dir / "comparison.csv", csv);
  write_file_atomic(out_dir / "comparison.json", js.dump(2) + "\n");
  return md;
}

}  // namespace daug::core
