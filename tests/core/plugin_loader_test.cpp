#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/error.h>
#include <daug/heatmap_composer.h>

#include <ATen/ATen.h>

#include "test_support.h"

using daug::core::PluginLoader;
using daug::testing::expect_error_contains;

namespace {
const std::string kFx = DAUG_FIXTURE_DIR;
std::string fx(const std::string& dir, const std::string& lib) { return kFx + "/" + dir + "/libdaug-plugin-" + lib + ".so"; }
}  // namespace

TEST(PluginLoader, LoadsAGoodPluginAndBuildsIt) {
  PluginLoader loader({kFx + "/good"});
  loader.load_all();
  const auto& p = loader.find("HeatmapComposer", "scale", "here");
  EXPECT_EQ(p.name, "scale");
  EXPECT_EQ(p.summary, "test fixture");
  auto doc = daug::core::parse_config("[s]\nplugin = \"scale\"\nfactor = 3.0\n", "t.toml");
  daug::testing::TempDir dir;
  daug::core::Experiment exp(loader, doc, dir.path());
  auto c = exp.component<daug::HeatmapComposer>("s");
  auto out = c->compose(at::ones({1, 1, 2, 2}), {});
  EXPECT_DOUBLE_EQ(out.sum().item<double>(), 12.0);
  EXPECT_EQ(exp.component<daug::HeatmapComposer>("s").get(), c.get()) << "components are shared per table";
}

TEST(PluginLoader, RefusesWrongAbiWithExpectedVsFound) {
  PluginLoader loader;
  expect_error_contains([&] { loader.load_library(fx("bad_abi", "fixture_bad_abi")); },
                        {"libdaug-plugin-fixture_bad_abi.so", "SDK ABI version 999", "expects ABI version 2"});
}

TEST(PluginLoader, RefusesLibraryWithoutManifest) {
  PluginLoader loader;
  expect_error_contains([&] { loader.load_library(fx("no_manifest", "fixture_no_manifest")); },
                        {"libdaug-plugin-fixture_no_manifest.so", "not a daug plugin", "daug_plugin_manifest"});
}

TEST(PluginLoader, DuplicateNameNamesBothFiles) {
  PluginLoader loader({kFx + "/good", kFx + "/dup"});
  expect_error_contains([&] { loader.load_all(); },
                        {"duplicate HeatmapComposer plugin name 'scale'", "libdaug-plugin-fixture_good.so",
                         "libdaug-plugin-fixture_dup.so"});
}

TEST(PluginLoader, MissingFileIsAPluginError) {
  PluginLoader loader;
  EXPECT_THROW(loader.load_library(kFx + "/nope/libdaug-plugin-nope.so"), daug::PluginError);
}

TEST(PluginLoader, UnknownNameListsAvailableAndSuggests) {
  PluginLoader loader({kFx + "/good"});
  loader.load_all();
  expect_error_contains([&] { loader.find("HeatmapComposer", "scal", "x.toml:3:10"); },
                        {"x.toml:3:10: no HeatmapComposer plugin named 'scal'", "Available: ", "scale",
                         "Did you mean 'scale'?"});
  expect_error_contains([&] { loader.find("Guidance", "scale", "here"); },
                        {"no Guidance plugin named 'scale'", "it is a HeatmapComposer plugin"});
}

TEST(PluginLoader, ThrowingConstructorIsReportedWithContext) {
  PluginLoader loader;
  loader.load_library(fx("throws", "fixture_throws"));
  auto doc = daug::core::parse_config("[s]\nplugin = \"throwing\"\n", "t.toml");
  daug::testing::TempDir dir;
  daug::core::Experiment exp(loader, doc, dir.path());
  try {
    exp.component<daug::HeatmapComposer>("s");
    FAIL() << "expected DataError";
  } catch (const daug::DataError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("while building [s] (plugin 'throwing'"), std::string::npos) << m;
    EXPECT_NE(m.find("fixture constructor failed on purpose"), std::string::npos) << m;
  }
}

TEST(PluginLoader, UnknownKeyInPluginTableIsRejectedBeforeConstruction) {
  PluginLoader loader({kFx + "/good"});
  loader.load_all();
  auto doc = daug::core::parse_config("[s]\nplugin = \"scale\"\nfactr = 3.0\n", "t.toml");
  daug::testing::TempDir dir;
  daug::core::Experiment exp(loader, doc, dir.path());
  expect_error_contains([&] { exp.component<daug::HeatmapComposer>("s"); },
                        {"t.toml:3:9: unknown key 'factr' in [s]; known keys: factor, mode", "Did you mean 'factor'"});
}

TEST(PluginLoader, MissingTableAndMissingPluginKeyAreErrors) {
  PluginLoader loader({kFx + "/good"});
  loader.load_all();
  auto doc = daug::core::parse_config("[s]\nfactor = 3.0\n", "t.toml");
  daug::testing::TempDir dir;
  daug::core::Experiment exp(loader, doc, dir.path());
  expect_error_contains([&] { exp.component<daug::HeatmapComposer>("nope"); },
                        {"needs a HeatmapComposer from table [nope]", "no such table"});
  expect_error_contains([&] { exp.component<daug::HeatmapComposer>("s"); }, {"table [s] must name its plugin"});
}

TEST(PluginLoader, SearchPathsIncludeEnvironment) {
  ::setenv("DAUG_PLUGIN_PATH", "/a:/b", 1);
  PluginLoader loader({"/x"});
  ::unsetenv("DAUG_PLUGIN_PATH");
  ASSERT_GE(loader.search_paths().size(), 3u);
  EXPECT_EQ(loader.search_paths()[0], "/x");
  EXPECT_EQ(loader.search_paths()[1], "/a");
  EXPECT_EQ(loader.search_paths()[2], "/b");
}
