#include <daug/core/config_loader.h>
#include <daug/core/sweep.h>

#include "test_support.h"

#include <fstream>
#include <sstream>

using daug::testing::expect_error_contains;
using daug::testing::TempDir;

TEST(Sweep, ExpandsTheCartesianProduct) {
  auto doc = daug::core::parse_config(
      "[g]\nplugin = \"softmax\"\nscale = 1.0\n[sweep]\n\"g.scale\" = [10.0, 100.0]\n\"g.plugin\" = [\"softmax\", \"sigmoid\"]\n",
      "s.toml");
  auto v = daug::core::expand_sweep(*doc, "s");
  ASSERT_EQ(v.size(), 4u);
  // Axes in key order; the first axis varies fastest.
  EXPECT_EQ(v[0].name, "g.plugin='softmax',g.scale=10.0");
  EXPECT_EQ(v[1].name, "g.plugin='sigmoid',g.scale=10.0");
  EXPECT_EQ(v[3].name, "g.plugin='sigmoid',g.scale=100.0");
  for (const auto& var : v) EXPECT_EQ(var.doc->root.get("sweep"), nullptr);
  EXPECT_DOUBLE_EQ(daug::ConfigView(v[2].doc, "g").get_double("scale"), 100.0);
  EXPECT_EQ(daug::ConfigView(v[1].doc, "g").get_string("plugin"), "sigmoid");
}

TEST(Sweep, NoSweepTableIsOneVariant) {
  auto doc = daug::core::parse_config("[g]\nx = 1\n", "s.toml");
  auto v = daug::core::expand_sweep(*doc, "base");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].name, "base");
}

TEST(Sweep, BadSweepEntryNamesLocation) {
  auto doc = daug::core::parse_config("[sweep]\n\"g.scale\" = 3\n", "s.toml");
  expect_error_contains([&] { daug::core::expand_sweep(*doc, "s"); }, {"s.toml:2:13", "must be a non-empty array"});
}

TEST(Sweep, RunVariantsWritesOneComparisonTable) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  std::string cfg = "[run]\nname = \"s\"\nstages = [\"first\"]\nruns_dir = \"" + (d / "runs").string() +
                    "\"\ncache_dir = \"" + (d / "cache").string() +
                    "\"\n[first]\nplugin = \"count\"\nvalue = 1\n[scale]\nplugin = \"scale\"\n"
                    "[sweep]\n\"first.value\" = [3, 4]\n";
  auto variants = daug::core::expand_sweep(*daug::core::parse_config(cfg, "s.toml"), "s");
  std::string md = daug::core::run_variants(loader, variants, d / "out", {}, {});
  EXPECT_NE(md.find("| first.value=3 | ok | 1.5000 | 3.0000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| first.value=4 | ok | 1.5000 | 4.0000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("first.nested.x | first.value"), std::string::npos) << md;
  EXPECT_TRUE(std::filesystem::exists(d / "out" / "comparison.csv"));
  EXPECT_TRUE(std::filesystem::exists(d / "out" / "comparison.json"));
  // A filter keeps only matching columns.
  std::string md2 = daug::core::run_variants(loader, variants, d / "out2", {}, {"nested"});
  EXPECT_EQ(md2.find("first.value |"), std::string::npos) << md2;
}
