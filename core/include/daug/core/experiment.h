#pragma once
/// The experiment composer: builds components from their config tables in dependency order (a component's
/// create() asks for its dependencies through BuildContext), owns them, and destroys them in reverse order.
#include <daug/build_context.h>
#include <daug/detail/config_document.h>

#include <daug/core/plugin_loader.h>

#include <filesystem>
#include <map>
#include <tuple>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace daug::core {

class Experiment final : public BuildContext {
 public:
  /// `doc` is the resolved config; device/seed come from its [run] table (defaults "cpu", 0).
  Experiment(const PluginLoader& loader, std::shared_ptr<const ConfigDocument> doc, std::filesystem::path run_dir);
  /// Destroys components in reverse build order (dependents before their dependencies).
  ~Experiment() override;
  Experiment(const Experiment&) = delete;
  Experiment& operator=(const Experiment&) = delete;

  std::string device() const override { return device_; }
  uint64_t seed() const override { return seed_; }
  std::filesystem::path run_dir() const override { return run_dir_; }
  ConfigView config(const std::string& table) const override;
  std::string table() const override { return building_.empty() ? std::string() : building_.back(); }

  /// Builds every table of the config that names a plugin (any interface), so that a wrong plugin name or key
  /// anywhere in the config fails before compute starts, even in tables a stage would only ask for later.
  void build_all_configured();

  /// (table, plugin name, library path) of every component built so far, in build order.
  std::vector<std::tuple<std::string, std::string, std::filesystem::path>> built() const;
  /// Tables the component of `table` asked for while it was built (its direct dependencies).
  std::vector<std::string> dependencies_of(const std::string& table) const;
  const std::shared_ptr<const ConfigDocument>& document() const { return doc_; }

 protected:
  std::shared_ptr<Component> component_any(const std::string& table, const char* interface) override;

 private:
  struct Built {
    std::string table;
    const PluginInfo* plugin;
    std::shared_ptr<Component> component;
    std::vector<std::string> deps;
  };
  const PluginLoader& loader_;
  std::shared_ptr<const ConfigDocument> doc_;
  std::filesystem::path run_dir_;
  std::string device_;
  uint64_t seed_ = 0;
  // CRUCIAL: destroyed in reverse order by the destructor body, not by member order.
  std::vector<Built> built_;
  std::vector<std::string> building_;  // stack, for cycle detection and dependency recording
  std::map<std::string, std::vector<std::string>> pending_deps_;  // table -> tables it asked for while building
};

}  // namespace daug::core
