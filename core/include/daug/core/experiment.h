#pragma once
/// The experiment composer: builds components from their config tables in dependency order (a component's
/// create() asks for its dependencies through BuildContext), records that graph, owns the components, and destroys
/// them in reverse order.
#include <daug/build_context.h>
#include <daug/detail/config_document.h>

#include <daug/core/plugin_loader.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace daug::core {

class Experiment final : public BuildContext {
 public:
  /// One recorded request: the component of `table`, used as `use` by the requester.
  struct Edge {
    std::string table;
    Use use = Use::all;
  };
  /// A built table: its plugin (by value), the component, and what it asked for while it was built.
  struct Node {
    std::string table;
    PluginInfo plugin;
    std::shared_ptr<Component> component;
    std::vector<Edge> deps;
  };

  /// `doc` is the resolved config; device/seed come from its [run] table (defaults "cpu", 0).
  Experiment(const PluginLoader& loader, std::shared_ptr<const ConfigDocument> doc, std::filesystem::path run_dir);
  /// Destroys components in reverse build order (dependents before their dependencies).
  ~Experiment() override;
  Experiment(const Experiment&) = delete;
  Experiment& operator=(const Experiment&) = delete;

  std::string device() const override { return device_; }
  uint64_t seed() const override { return seed_; }
  std::filesystem::path run_dir() const override { return run_dir_; }
  /// `daug run` names the run directory once the configuration is valid (it does not exist while building).
  void set_run_dir(std::filesystem::path dir) { run_dir_ = std::move(dir); }
  ConfigView config(const std::string& table) const override;
  std::string table() const override { return building_.empty() ? std::string() : building_.back(); }
  /// [run].precision (validated against the device in the constructor); records that the table being built
  /// inherits it (inherits_run_precision()).
  RunPrecision run_precision() const override;
  /// Whether the component of `table` asked for the run precision while it was built (its cache key then
  /// includes it).
  bool inherits_run_precision(const std::string& table) const;

  /// Builds the component of `table` as `interface` (what `component<T>()` does, for the core).
  std::shared_ptr<Component> build(const std::string& table, const char* interface) {
    return component_any(table, interface, Use::all);
  }

  /// The built node of `table`, or nullptr.
  const Node* node(const std::string& table) const;
  /// (table, plugin name, library path) of every component built so far, in build order.
  std::vector<std::tuple<std::string, std::string, std::filesystem::path>> built() const;
  /// Tables the component of `table` asked for while it was built (its direct dependencies).
  std::vector<std::string> dependencies_of(const std::string& table) const;
  /// Effective options of a built table (defaults included, as TOML lines) in `scope` (see OptionScope).
  std::string effective_options(const std::string& table, OptionScope scope) const;
  /// Every built table as TOML (plugin + effective options), in build order: the run's effective.toml.
  std::string effective_toml() const;
  /// Throws ConfigError for the first table of the config that nothing built uses (a misspelt table name is the
  /// usual cause), with its file:line and the closest used table name. `also_used`: tables the core reads itself.
  void check_all_tables_used(const std::vector<std::string>& also_used) const;
  const std::shared_ptr<const ConfigDocument>& document() const { return doc_; }

 protected:
  std::shared_ptr<Component> component_any(const std::string& table, const char* interface, Use use) override;

 private:
  const PluginLoader& loader_;
  std::shared_ptr<const ConfigDocument> doc_;
  std::filesystem::path run_dir_;
  std::string device_;
  uint64_t seed_ = 0;
  // CRUCIAL: destroyed in reverse order by the destructor body, not by member order.
  std::vector<Node> built_;
  std::vector<std::string> building_;  // stack, for cycle detection and dependency recording
  std::map<std::string, std::vector<Edge>> pending_deps_;  // table -> what it asked for while building
  mutable std::set<std::string> read_tables_;             // tables read through config()
  RunPrecision run_precision_;
  mutable std::set<std::string> run_precision_readers_;  // tables that inherit [run].precision
};

}  // namespace daug::core
