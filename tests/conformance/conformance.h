#pragma once
// Contract tests per plugin: every plugin the PluginLoader finds is built the way users build it (PluginLoader +
// Experiment from a TOML config) and checked against the contract of its interface. One ctest per
// (interface, plugin, contract): `Conformance/<Interface>Contract.<Contract>/<plugin>`; the checks every plugin
// shares (options documented, unknown key rejected, builds from its config) run in one test over all plugins,
// because every ctest is a process that pays LibTorch's start-up (~1 s of CPU).
//
// Conventions (tests/conformance/configs/):
//  * The config of plugin P of interface I is `configs/<interface_snake>/<P>.toml` (e.g. generator/ddpm.toml,
//    heatmap_composer/channel.toml). A plugin without one fails `Conformance.EveryPluginIsCovered` (and its
//    interface's contract tests), so a new plugin cannot skip its contract.
//  * The component under test is the table named after its interface's role ([guidance], [generator],
//    [classifier], [backbone], [criterion], [composer], [data], [search]), else the one table naming the plugin (Commands:
//    [<name>]); `[conformance] table = "..."` overrides it. Stage configs are run configs for `daug run` (every
//    table used: unused tables are errors); the stages under test are [run].stages.
//  * `[conformance]` holds test-only hints the interface does not expose (read by the tests, never by plugins):
//    `image_shape = [C, H, W]` (classifier/guidance input), `label = 1` (class label of a class-conditional
//    generator, -1 = unconditional), `noise_level = 500` (generator translate), `exact = true` (a VectorSearch
//    that must return the exact top-k), `variants = [["search.type=\"hnsw\""], ...]` (VectorSearch: the contract
//    also runs on the config with each list of --set overrides).
//
// The contract checks are free functions on interface objects, so that self_test.cpp can show that each of them
// fails on a deliberately broken fixture.
#include <daug/backbone.h>
#include <daug/classifier.h>
#include <daug/command.h>
#include <daug/config_view.h>
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/criterion.h>
#include <daug/generator.h>
#include <daug/guidance.h>
#include <daug/heatmap_composer.h>
#include <daug/source.h>
#include <daug/stage.h>
#include <daug/trainable.h>
#include <daug/vector_search.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "test_support.h"

namespace daug::conformance {

/// One plugin found by the loader.
struct PluginCase {
  std::string interface;  ///< "Guidance", "Generator", ...
  std::string name;       ///< registry name, e.g. "softmax"
  std::filesystem::path library;
};
void PrintTo(const PluginCase& c, std::ostream* os);

/// The interfaces this suite has contracts for; a plugin of any other interface fails PluginContract.
const std::vector<std::string>& known_interfaces();
/// The interfaces whose SDK class derives from daug::Trainable (checked at compile time).
const std::vector<std::string>& trainable_interfaces();

/// The loader over the build's plugin directory (DAUG_TEST_PLUGIN_DIR), loaded once.
core::PluginLoader& loader();
/// Plugins of `interface` ("" = all), in the loader's order.
std::vector<PluginCase> plugins_of(const std::string& interface);
std::vector<PluginCase> plugins_of_any(const std::vector<std::string>& interfaces);

/// gtest parameter names: the plugin name (`softmax`) or, with the interface, `Guidance_softmax`.
std::string plugin_param_name(const ::testing::TestParamInfo<PluginCase>& info);
std::string qualified_param_name(const ::testing::TestParamInfo<PluginCase>& info);

/// "HeatmapComposer" → "heatmap_composer".
std::string snake(const std::string& interface);
std::filesystem::path configs_dir();
/// configs/<snake(interface)>/<name>.toml
std::filesystem::path config_for(const PluginCase& c);
/// Default table of the component under test: [guidance], [generator], ..., [data] for Sources.
std::string default_table(const std::string& interface);

/// An Experiment built from a plugin's conformance config, as `daug run` builds one (seeded from [run].seed).
class Built {
 public:
  explicit Built(const PluginCase& c, const std::vector<std::string>& overrides = {});
  ~Built();
  core::Experiment& experiment() { return *exp_; }
  /// The [conformance] hints table (may not exist).
  ConfigView hints() const;
  /// Table of the component under test.
  const std::string& table() const { return table_; }
  template <class T>
  std::shared_ptr<T> get(const std::string& table) {
    return exp_->component<T>(table);
  }
  template <class T>
  std::shared_ptr<T> subject() {
    return get<T>(table_);
  }
  /// The component under test through the typed accessor of its interface (fails for an unknown interface).
  std::shared_ptr<Component> subject_any();

 private:
  PluginCase case_;
  daug::testing::TempDir dir_;
  std::shared_ptr<ConfigDocument> doc_;
  std::unique_ptr<core::Experiment> exp_;
  std::string table_;
};

// ---- contract checks (EXPECT-based; each reports what broke) -------------------------------------------------

/// Deep copy (contiguous clones) of a state.
NamedTensors clone_state(const NamedTensors& s);
/// Same keys and shapes, different values (floating tensors: N(0, 0.02); integers +1; bools flipped).
NamedTensors perturbed_state(const NamedTensors& s, uint64_t seed);
/// Expects `actual` to hold the same keys in the same order with identical shapes, dtypes and values.
void expect_same_state(const NamedTensors& expected, const NamedTensors& actual, const std::string& what);

/// state() → load_state(donor) → state() reproduces `donor` exactly and does not alias it; state() →
/// load_state(state) is the identity.
void check_state_round_trip(Trainable& t);
/// load_state(bad) throws daug::DataError naming `key` and leaves every tensor of `t` unchanged.
void check_load_state_rejects(Trainable& t, const NamedTensors& bad, const std::string& key, const std::string& what);

/// Split invariants, unique ids, 14 labels in {0, 1, NaN}, absolute existing images.
void check_source(const Source& s);

/// translate() with a zero-scale guidance equals translate() without guidance (same seed) for both encode modes.
void check_zero_guidance_is_reconstruction(Generator& g, Guidance& zero, const TranslateRequest& base);

/// The VectorSearch contract on a fresh (never added to) search: size()/dim() 0 and search() throwing before add();
/// add() of clustered unit rows (with duplicated rows: ties) copies them; every query gets 1..min(k, size()) hits
/// with valid distinct rows, scores equal to the inner products, ordered by score descending and, among equal
/// scores, by row ascending; k > size() and no queries work; a dimension mismatch and k < 1 throw daug::Error
/// naming what was expected and found. `exact`: the hits are the brute force's rows.
void check_vector_search(VectorSearch& fresh, bool exact);

/// Files under a directory: relative path → (size, mtime in ns); directories with size -1.
struct FileStamp {
  int64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp& o) const { return size == o.size && mtime_ns == o.mtime_ns; }
};
using Snapshot = std::map<std::string, FileStamp>;
Snapshot snapshot(const std::filesystem::path& dir);
/// A second `daug run` was a no-op: `after` equals `before` (nothing added, removed or rewritten) and `log` (the
/// second run's output) reports every stage of `stages` as cached and none as run.
void check_second_run_noop(const Snapshot& before, const Snapshot& after, const std::string& log,
                           const std::vector<std::string>& stages);

}  // namespace daug::conformance
