#include <daug/core/config_loader.h>
#include <daug/core/sweep.h>
#include <daug/error.h>

#include "test_support.h"

#include <nlohmann/json.hpp>

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

namespace {

// Two-or-more variants of the `count` fixture stage whose `paired` option writes paired_items.json (metric
// hit_rate, items i<first>, i<first+1>, ...), named like `daug ablate` names config files.
std::vector<daug::core::Variant> paired_variants(const TempDir& d,
                                                 const std::vector<std::pair<std::string, std::string>>& named) {
  std::vector<daug::core::Variant> out;
  for (const auto& [name, first] : named) {
    std::string cfg = "[run]\nname = \"" + name + "\"\nstages = [\"first\"]\nruns_dir = \"" + (d / "runs").string() +
                      "\"\ncache_dir = \"" + (d / "cache").string() + "\"\n[first]\nplugin = \"count\"\n" + first +
                      "\n[scale]\nplugin = \"scale\"\n";
    out.push_back(daug::core::expand_sweep(*daug::core::parse_config(cfg, name + ".toml"), name).front());
  }
  return out;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

daug::core::PluginLoader fixture_loader() {
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  return loader;
}

}  // namespace

// Issue 12: the comparison gains each variant's paired difference from the first with a bootstrap 95% CI. Values in
// eighths shifted by exactly 0.25: every resample's difference is exactly 0.25, so Δ and both CI ends are +0.2500.
TEST(Sweep, PairedBootstrapGivesTheDifferenceFromTheFirstVariant) {
  TempDir d;
  auto loader = fixture_loader();
  const std::string a = "paired = [0.0, 0.125, 0.5, 1.0, 0.25, 0.75, 0.0, 0.5]";
  const std::string b = "paired = [0.25, 0.375, 0.75, 1.25, 0.5, 1.0, 0.25, 0.75]";
  const std::string c = "paired = [0.0, 0.125, 0.5, 1.0, 0.25, 0.75, 0.0, 0.5]\nvalue = 2";  // same items as a
  auto variants = paired_variants(d, {{"a", a}, {"b", b}, {"c", c}});
  std::string md = daug::core::run_variants(loader, variants, d / "out", {}, {}, {200, 0});
  EXPECT_NE(md.find("### Paired bootstrap: difference from a\n"), std::string::npos) << md;
  EXPECT_NE(md.find("200 resamples"), std::string::npos) << md;
  EXPECT_NE(md.find("| metric | variant | Δ | 95% CI | n items |"), std::string::npos) << md;
  EXPECT_NE(md.find("| first.hit_rate | b | +0.2500 | [+0.2500, +0.2500] | 8 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| first.hit_rate | c | +0.0000 | [+0.0000, +0.0000] | 8 |"), std::string::npos) << md;
  EXPECT_EQ(slurp(d / "out" / "comparison.md"), md);
  const std::string csv = slurp(d / "out" / "comparison.csv");
  EXPECT_NE(csv.find(",Δ first.hit_rate,Δ first.hit_rate lo95,Δ first.hit_rate hi95,first.hit_rate paired n\n"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find(",0.250000,0.250000,0.250000,8\n"), std::string::npos) << csv;
  const auto js = nlohmann::json::parse(slurp(d / "out" / "comparison.json"));
  ASSERT_EQ(js.size(), 3u);
  EXPECT_FALSE(js[0].contains("paired_bootstrap"));
  const auto& p = js[1]["paired_bootstrap"]["first.hit_rate"];
  EXPECT_EQ(p["reference"], "a");
  EXPECT_EQ(p["delta"].get<double>(), 0.25);
  EXPECT_EQ(p["ci95"][0].get<double>(), 0.25);
  EXPECT_EQ(p["ci95"][1].get<double>(), 0.25);
  EXPECT_EQ(p["paired_items"].get<int>(), 8);
  EXPECT_EQ(p["draws"].get<int>(), 200);
  // The metric column itself is unchanged by the CI (hit_rate is a metrics.json number like any other).
  EXPECT_NE(md.find("| b | ok |"), std::string::npos) << md;
  // --bootstrap 0: no CI table, no CI columns.
  std::string off = daug::core::run_variants(loader, variants, d / "off", {}, {}, {0, 0});
  EXPECT_EQ(off.find("Paired bootstrap"), std::string::npos) << off;
  EXPECT_EQ(slurp(d / "off" / "comparison.csv").find("Δ"), std::string::npos);
}

TEST(Sweep, PairedBootstrapSaysWhenVariantsShareOnlySomeItems) {
  TempDir d;
  auto loader = fixture_loader();
  // b's items are i2..i9: 6 shared with a's i0..i7. On those, a's values are 1 and b's 0: Δ = −1 exactly.
  auto variants = paired_variants(d, {{"a", "paired = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]"},
                                      {"b", "paired = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]\npaired_first_id = 2"},
                                      {"none", "value = 5"}});
  auto none = variants;
  variants.pop_back();
  none.erase(none.begin() + 1);
  std::string md = daug::core::run_variants(loader, variants, d / "out", {}, {}, {100, 3});
  EXPECT_NE(md.find("| first.hit_rate | b | -1.0000 | [-1.0000, -1.0000] | 6 (of 8 / 8) |"), std::string::npos) << md;
  EXPECT_NE(md.find("the variants share only n items"), std::string::npos) << md;
  // A variant without paired_items.json: no CI for that stage, and the table says why.
  md = daug::core::run_variants(loader, none, d / "out_none", {}, {}, {100, 3});
  EXPECT_NE(md.find("first: no CI, paired_items.json is missing in none"), std::string::npos) << md;
  EXPECT_EQ(md.find("| metric | variant |"), std::string::npos) << md;
}

TEST(Sweep, MalformedPairedItemsIsADataErrorNamingTheFile) {
  TempDir d;
  auto loader = fixture_loader();
  auto variants = paired_variants(d, {{"a", "paired = [0.0, 1.0]"},
                                      {"b",
                                       "paired_raw = '{\"format\": \"daug.paired_items/1\", \"metrics\": "
                                       "[{\"name\": \"hit_rate\", \"kind\": \"mean\", \"items\": [[\"i0\"]]}]}'"}});
  try {
    daug::core::run_variants(loader, variants, d / "out", {}, {}, {100, 0});
    ADD_FAILURE() << "no error";
  } catch (const daug::DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("paired_items.json: metrics[0] ('hit_rate', mean), item 0: expected [\"<id>\", <number>]"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find(d.path().string()), std::string::npos) << msg;  // the file's full path
  }
  // The plain comparison is still written.
  EXPECT_NE(slurp(d / "out" / "comparison.md").find("| b | ok |"), std::string::npos);
}
