#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/error.h>
#include <daug/heatmap_composer.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>

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
                        {"libdaug-plugin-fixture_bad_abi.so", "SDK ABI version 999", "expects ABI version " + std::to_string(DAUG_SDK_ABI_VERSION)});
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

// A truncated library used to reach dlopen(), which maps pages past the end of the file: the first touch killed
// the process with SIGBUS and no message. It is now refused before dlopen with the file and what is wrong.
TEST(PluginLoader, TruncatedLibraryIsRefusedBeforeDlopen) {
  daug::testing::TempDir dir;
  const auto good = fx("good", "fixture_good");
  const auto size = std::filesystem::file_size(good);
  for (uint64_t keep : {size / 2, size - 1, uint64_t{20}}) {
    const auto lib = dir / "libdaug-plugin-trunc.so";
    std::filesystem::copy_file(good, lib, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::resize_file(lib, keep);
    PluginLoader loader({dir.path()});
    try {
      loader.load_all();
      ADD_FAILURE() << "a library cut to " << keep << " of " << size << " bytes was loaded";
    } catch (const daug::PluginError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(lib.string()), std::string::npos) << m;
      EXPECT_NE(m.find(fmt::format("({} bytes;", keep)), std::string::npos) << m;
      if (keep > 64) EXPECT_NE(m.find("past the end of the file"), std::string::npos) << m;
      else EXPECT_NE(m.find("the ELF header needs 64 bytes, but the file ends at byte 20"), std::string::npos) << m;
    }
  }
}

TEST(PluginLoader, GarbageFileNamedLikeAPluginIsRefused) {
  daug::testing::TempDir dir;
  daug::testing::write_text(dir / "libdaug-plugin-garbage.so", "GIF89a not a library at all");
  PluginLoader loader({dir.path()});
  expect_error_contains([&] { loader.load_all(); },
                        {(dir / "libdaug-plugin-garbage.so").string(), "expected the ELF signature 7f 45 4c 46",
                         "starts with '47 49 46 38 39 61 20 6e'"});
}

TEST(PluginLoader, PluginPathThatDoesNotExistIsAnError) {
  daug::testing::TempDir dir;
  PluginLoader loader({dir / "nope"});
  try {
    loader.load_all();
    FAIL() << "a --plugin-path that does not exist was ignored";
  } catch (const daug::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--plugin-path " + (dir / "nope").string() + ": no such plugin directory"),
              std::string::npos)
        << e.what();
  }
  ::setenv("DAUG_PLUGIN_PATH", (dir / "gone").c_str(), 1);
  PluginLoader from_env;
  ::unsetenv("DAUG_PLUGIN_PATH");
  expect_error_contains([&] { from_env.load_all(); }, {"DAUG_PLUGIN_PATH " + (dir / "gone").string()});
}
