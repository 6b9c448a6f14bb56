// Builds components from config tables on demand (dependencies first), owns them, destroys in reverse order.
#include <daug/core/experiment.h>
#include <daug/error.h>
#include <daug/log.h>

#include <ATen/Context.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <functional>

namespace daug::core {
namespace {

/// Re-throws the current exception with `context` prefixed, keeping its daug error type.
[[noreturn]] void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const ConfigError& e) {
    throw ConfigError(context + e.what());
  } catch (const DataError& e) {
    throw DataError(context + e.what());
  } catch (const PluginError& e) {
    throw PluginError(context + e.what());
  } catch (const std::exception& e) {
    throw Error(context + e.what());
  }
}

}  // namespace

Experiment::Experiment(const PluginLoader& loader, std::shared_ptr<const ConfigDocument> doc,
                       std::filesystem::path run_dir)
    : loader_(loader), doc_(std::move(doc)), run_dir_(std::move(run_dir)), device_("cpu") {
  ConfigView run(doc_, "run");
  if (run.exists()) {
    if (run.has("device")) device_ = run.get_string("device");
    if (run.has("seed")) {
      int64_t s = run.get_int("seed");
      if (s < 0) throw ConfigError(fmt::format("{}: [run].seed must be >= 0, but got {}", run.location("seed").str(), s));
      seed_ = static_cast<uint64_t>(s);
    }
  }
  if (!(device_ == "cpu" || device_.rfind("cuda", 0) == 0))
    throw ConfigError(fmt::format("{}: [run].device must be \"cpu\", \"cuda\" or \"cuda:N\", but got \"{}\"",
                                  run.location("device").str(), device_));
}

Experiment::~Experiment() {
  // Reverse build order: a component is destroyed before the components it was built from.
  while (!built_.empty()) built_.pop_back();
}

ConfigView Experiment::config(const std::string& table) const { return ConfigView(doc_, table); }

std::shared_ptr<Component> Experiment::component_any(const std::string& table, const char* interface) {
  auto record_dep = [&] {
    if (building_.empty()) return;
    pending_deps_[building_.back()].push_back(table);
  };
  for (const auto& b : built_)
    if (b.table == table) {
      record_dep();
      return b.component;
    }
  if (std::find(building_.begin(), building_.end(), table) != building_.end())
    throw ConfigError(fmt::format("dependency cycle between config tables: {} -> {}", fmt::join(building_, " -> "),
                                  table));
  ConfigView view(doc_, table);
  if (!view.exists()) {
    std::string who = building_.empty() ? std::string("the pipeline") : "[" + building_.back() + "]";
    throw ConfigError(fmt::format("{}: {} needs a {} from table [{}], but the config has no such table",
                                  doc_->main_file, who, interface, table));
  }
  if (!view.has("plugin"))
    throw ConfigError(fmt::format("{}: table [{}] must name its plugin (plugin = \"...\", a {} plugin)",
                                  view.location().str(), table, interface));
  const std::string name = view.get_string("plugin");
  const PluginInfo& info = loader_.find(interface, name, view.location("plugin").str());
  record_dep();
  building_.push_back(table);
  // Reproducible initialisation: each component's random weights depend only on the run seed and its table name,
  // not on the order in which components happen to be built.
  at::manual_seed(seed_ ^ std::hash<std::string>{}(table));
  std::shared_ptr<Component> made;
  try {
    made = info.manifest->create(view, *this);
  } catch (...) {
    building_.pop_back();
    rethrow_with_context(fmt::format("while building [{}] (plugin '{}' from {}): ", table, name,
                                     info.library.string()));
  }
  building_.pop_back();
  if (!made)
    throw PluginError(fmt::format("plugin '{}' ({}) returned no object for [{}]", name, info.library.string(), table));
  log::debug("built [{}]: {}", table, made->describe());
  built_.push_back(Built{table, &info, made, pending_deps_[table]});
  return made;
}

void Experiment::build_all_configured() {
  for (const auto& [key, node] : doc_->root) {
    const auto* table = node.as_table();
    if (!table) continue;
    const auto* plugin = table->get("plugin");
    if (!plugin || !plugin->is_string()) continue;
    const std::string name(key.str());
    bool done = false;
    for (const auto& b : built_) done = done || b.table == name;
    if (done) continue;
    const std::string plugin_name = plugin->as_string()->get();
    const PluginInfo* info = nullptr;
    for (const auto& p : loader_.list())
      if (p.name == plugin_name) info = &loader_.find(p.interface, p.name, "");
    if (!info) {
      try {
        loader_.find_any(plugin_name);
      } catch (const ConfigError& e) {
        throw ConfigError(fmt::format("{}: [{}]: {}", ConfigView(doc_, name).location("plugin").str(), name, e.what()));
      }
    }
    component_any(name, info->interface.c_str());
  }
}

std::vector<std::tuple<std::string, std::string, std::filesystem::path>> Experiment::built() const {
  std::vector<std::tuple<std::string, std::string, std::filesystem::path>> out;
  for (const auto& b : built_) out.emplace_back(b.table, b.plugin->name, b.plugin->library);
  return out;
}

std::vector<std::string> Experiment::dependencies_of(const std::string& table) const {
  for (const auto& b : built_)
    if (b.table == table) return b.deps;
  return {};
}

}  // namespace daug::core
