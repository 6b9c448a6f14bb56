// End to end through the core: TOML → PluginLoader (the built libdaug-plugin-source_nih.so) → Experiment → Source.
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/error.h>
#include <daug/source.h>

#include "test_support.h"

#include <gtest/gtest.h>

namespace {

using daug::testing::expect_error_contains;

const std::filesystem::path kExamples = std::filesystem::path(DAUG_SOURCE_DIR) / "examples" / "data";

std::shared_ptr<daug::Source> build(const std::string& toml, daug::testing::TempDir& run) {
  static daug::core::PluginLoader* loader = [] {
    auto* l = new daug::core::PluginLoader();  // never destroyed: plugin libraries are never unloaded
    l->load_library(std::filesystem::path(DAUG_TEST_PLUGIN_DIR) / "libdaug-plugin-source_nih.so");
    return l;
  }();
  auto doc = daug::core::parse_config(toml, "inline.toml", {}, kExamples);
  static std::vector<std::unique_ptr<daug::core::Experiment>> keep;  // components live as long as their experiment
  keep.push_back(std::make_unique<daug::core::Experiment>(*loader, doc, run.path()));
  return keep.back()->component<daug::Source>("data");
}

TEST(NihSourceConfig, BuildsFromTomlThroughThePluginLoader) {
  daug::testing::TempDir run;
  auto src = build(
      "[data]\nplugin = \"nih\"\nroot = \"${config_dir}/nih-cxr14-sample\"\nmax_per_split = 4\n"
      "superclass_names = [\"No Finding\", \"Lung Lesion\"]\n"
      "superclass_members = [[\"No Finding\"], [\"Lung Lesion\"]]\n",
      run);
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->samples().size(), 12u);
  EXPECT_EQ(src->superclasses().size(), 2);
  EXPECT_TRUE(src->samples()[0].image.is_absolute());
  EXPECT_NE(src->describe().find("nih(root="), std::string::npos);
}

TEST(NihSourceConfig, ConfigErrorsNameTheKey) {
  daug::testing::TempDir run;
  expect_error_contains([&] { build("[data]\nplugin = \"nih\"\nroot = \"${config_dir}\"\nlimt = 3\n", run); },
                        {"limt"});
  expect_error_contains([&] { build("[data]\nplugin = \"nih\"\nroot = \"${config_dir}\"\nlimit = -1\n", run); },
                        {"limit", ">= 0"});
  expect_error_contains(
      [&] {
        build("[data]\nplugin = \"nih\"\nroot = \"${config_dir}/nih-cxr14-sample\"\n"
              "superclass_names = [\"A\"]\nsuperclass_members = [[\"Cardiomegally\"]]\n",
              run);
      },
      {"Cardiomegally", "Cardiomegaly"});
}

}  // namespace
