// `daug compare-heatmaps`: Pearson r against hand and numpy values, the reference choice, the schedule parsing,
// and the command end to end on heatmap directories and a sweep directory written here.
#include "compare_heatmaps_command.h"

#include "test_support.h"

#include <daug/data/image.h>
#include <daug/data/npy.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace daug::plugins::compare;

TEST(ComparePearson, ClosedFormsAndHandValues) {
  const std::vector<double> x = {0.5, -1, 3, 2.25, 7};
  std::vector<double> lin, neg;
  for (double v : x) lin.push_back(2 * v + 1), neg.push_back(-v);
  EXPECT_NEAR(pearson(x, lin), 1.0, 1e-15);   // y = 2x + 1
  EXPECT_NEAR(pearson(x, neg), -1.0, 1e-15);  // y = -x
  // By hand: means 3 and 3.4, Σdadb = 12, Σda² = 10, Σdb² = 21.2 → 12/√212; numpy.corrcoef gives the same digits.
  EXPECT_NEAR(pearson({1, 2, 3, 4, 5}, {2, 1, 4, 3, 7}), 12 / std::sqrt(212.0), 1e-15);
  EXPECT_NEAR(pearson({1, 2, 3, 4, 5}, {2, 1, 4, 3, 7}), 0.8241633836921342, 1e-15);
  // numpy.corrcoef([0.1,0.9,0.4,0.3], [0.2,0.5,0.6,0.1])[0,1]
  EXPECT_NEAR(pearson({0.1, 0.9, 0.4, 0.3}, {0.2, 0.5, 0.6, 0.1}), 0.596576493405607, 1e-14);
  // Undefined: a constant vector, a NaN/Inf value, no values.
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(pearson({1, 2, 3}, {4, 4, 4})));
  EXPECT_TRUE(std::isnan(pearson({1, std::nan(""), 3}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(pearson({1, INFINITY, 3}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(pearson({}, {})));
}

TEST(ComparePearson, SummaryCountsUndefinedValues) {
  const double nan = std::nan("");
  Summary s = summarize({0.5, nan, 1.0, 0.0, nan});
  EXPECT_EQ(s.valid, 3);
  EXPECT_EQ(s.undefined, 2);
  EXPECT_DOUBLE_EQ(s.mean, 0.5);
  EXPECT_DOUBLE_EQ(s.median, 0.5);
  EXPECT_DOUBLE_EQ(s.min, 0.0);
  EXPECT_DOUBLE_EQ(summarize({0.25, 1.0, 0.5, 0.0}).median, 0.375);  // even count: mean of the middle two
  s = summarize({nan});
  EXPECT_EQ(s.valid, 0);
  EXPECT_EQ(s.undefined, 1);
  EXPECT_TRUE(std::isnan(s.mean));
}

TEST(CompareSchedules, StepsAndTheReference) {
  EXPECT_EQ(respacing_steps("ddim10", 1000), 10);
  EXPECT_EQ(respacing_steps("250", 1000), 250);
  EXPECT_EQ(respacing_steps("10,15,20", 1000), 45);
  EXPECT_EQ(respacing_steps("", 1000), 1000);  // no respacing: every training step
  EXPECT_EQ(respacing_steps("ddimx", 1000), std::nullopt);
  EXPECT_EQ(respacing_steps("fast", 1000), std::nullopt);
  EXPECT_EQ(steps_from_name("synthetic_respacing[generator.timestep_respacing='ddim50']"), 50);
  EXPECT_EQ(steps_from_name("ddim10_vs_ddim1000"), 1000);  // the last one
  EXPECT_EQ(steps_from_name("100"), 100);
  EXPECT_EQ(steps_from_name("softmax"), std::nullopt);
  EXPECT_EQ(slowest({10, 250, std::nullopt, 50}), 1u);
  EXPECT_EQ(slowest({std::nullopt, 20, 20}), 1u);  // the first of equals
  EXPECT_EQ(slowest({std::nullopt, std::nullopt}), std::nullopt);
}

TEST(CompareLocalization, PrefersTheOverallRowAndWholeKeyParts) {
  // As the localize stage writes them (nlohmann sorts keys: the reference rows come first).
  Localization l = pick_localization({{"localization.Nodule.pointing_hit_rate", 0.2},
                                      {"localization.Overall.centred_gaussian.pointing_hit_rate", 0.3},
                                      {"localization.Overall.iobb_hit_rate", 0.4},
                                      {"localization.Overall.pointing_hit_rate", 0.7},
                                      {"localization.pixel.auroc_pooled", 0.81},
                                      {"localization.pixel.best_dice", 0.35},
                                      {"localization.pixel.centred_gaussian.best_dice", 0.1},
                                      {"images", 50}});
  EXPECT_EQ(l.pointing, 0.7);
  EXPECT_EQ(l.iobb, 0.4);
  EXPECT_EQ(l.pixel_auroc, 0.81);
  EXPECT_EQ(l.best_dice, 0.35);
  EXPECT_EQ(l.keys,
            (std::vector<std::string>{"localization.Overall.pointing_hit_rate", "localization.Overall.iobb_hit_rate",
                                      "localization.pixel.auroc_pooled", "localization.pixel.best_dice"}));
  l = pick_localization({{"pointing_hit_rate", 0.3}, {"xiobb_hit_rate", 0.9}});
  EXPECT_EQ(l.pointing, 0.3);
  EXPECT_FALSE(l.iobb.has_value());  // "xiobb_hit_rate" is another metric
  EXPECT_FALSE(l.best_dice.has_value());
  EXPECT_FALSE(pick_localization({{"heatmaps.seconds", 3}}).any());
}

TEST(CompareFiles, EffectiveTomlAndIndex) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "effective.toml",
                            "[run]\nname = 'x'\n# comment\n\n[generator]\nplugin = \"ddpm\"  # Generator (abc)\n"
                            "timestep_respacing = 'ddim20'\ndiffusion_steps = 1000\nchannel_mult = []\n[heatmaps]\n"
                            "generator = 'gen2'\n");
  const auto g = read_toml_table(tmp / "effective.toml", "generator");
  EXPECT_EQ(g.at("plugin"), "ddpm");
  EXPECT_EQ(g.at("timestep_respacing"), "ddim20");
  EXPECT_EQ(g.at("diffusion_steps"), "1000");
  EXPECT_EQ(read_toml_table(tmp / "effective.toml", "heatmaps").at("generator"), "gen2");
  EXPECT_TRUE(read_toml_table(tmp / "missing.toml", "generator").empty());
  // The index keys pair by id, target and direction; a key listed twice names its line.
  daug::testing::write_text(tmp / "hm" / "index.csv",
                            "id,split,file,target,direction\na,test,a.npy,No Finding,+\na,test,a2.npy,Lung Lesion,+\n");
  const auto set = HeatmapSet::read(tmp / "hm");
  ASSERT_EQ(set.files.size(), 2u);
  EXPECT_EQ(set.files.at("a [No Finding, +]"), tmp / "hm" / "a.npy");
  daug::testing::write_text(tmp / "dup" / "index.csv", "id,split,file\na,test,a.npy\nb,test,b.npy\na,test,c.npy\n");
  daug::testing::expect_error_contains([&] { HeatmapSet::read(tmp / "dup"); },
                                       {"index.csv:4", "'a' is listed twice", "line 2"});
  daug::testing::expect_error_contains([&] { HeatmapSet::read(tmp / "nothing"); }, {"index.csv", "does not exist"});
}

namespace {
void save(const std::filesystem::path& p, std::vector<float> v, int64_t h = 2, int64_t w = 3) {
  daug::data::save_npy(p, at::tensor(v).reshape({h, w}));
}
/// A heatmaps stage output: index.csv (id,split,file,target,direction) over `ids`, and metrics.json.
void write_dir(const std::filesystem::path& dir, const std::vector<std::string>& ids, const std::string& metrics) {
  std::string index = "id,split,file,target,direction\n";
  for (const auto& id : ids) index += id + ",test," + id + "_+nof.npy,No Finding,+\n";
  daug::testing::write_text(dir / "index.csv", index);
  if (!metrics.empty()) daug::testing::write_text(dir / "metrics.json", metrics);
}
const std::vector<float> kA = {0, 1, 2, 3, 4, 5}, kB = {0.5, 0.1, 0.9, 0.3, 0.2, 0.8};
}  // namespace

TEST(CompareSets, MatchedMismatchedAndConstantMaps) {
  daug::testing::TempDir tmp;
  write_dir(tmp / "ref", {"a", "b", "c"}, "");
  save(tmp / "ref" / "a_+nof.npy", kA);
  save(tmp / "ref" / "b_+nof.npy", kB);
  save(tmp / "ref" / "c_+nof.npy", kA);
  write_dir(tmp / "v", {"a", "b", "d"}, "");
  std::vector<float> neg;
  for (float x : kA) neg.push_back(-x);
  save(tmp / "v" / "a_+nof.npy", neg);
  save(tmp / "v" / "b_+nof.npy", std::vector<float>(6, 0.25f));  // constant: r undefined
  save(tmp / "v" / "d_+nof.npy", kA);
  const Pairing p = compare_sets(HeatmapSet::read(tmp / "ref"), HeatmapSet::read(tmp / "v"));
  EXPECT_EQ(p.matched, 2);
  EXPECT_EQ(p.only_reference, 1);
  EXPECT_EQ(p.only_variant, 1);
  EXPECT_EQ(p.first_only_reference, std::vector<std::string>{"c [No Finding, +]"});
  EXPECT_EQ(p.first_only_variant, std::vector<std::string>{"d [No Finding, +]"});
  ASSERT_EQ(p.r.size(), 2u);
  EXPECT_NEAR(p.r[0], -1.0, 1e-12);
  EXPECT_TRUE(std::isnan(p.r[1]));
  EXPECT_EQ(p.constant, 1);
  EXPECT_EQ(p.nonfinite, 0);
  // Different shapes are an error naming both files.
  save(tmp / "v" / "a_+nof.npy", kA, 3, 2);
  daug::testing::expect_error_contains(
      [&] { compare_sets(HeatmapSet::read(tmp / "ref"), HeatmapSet::read(tmp / "v")); },
      {"shape [3, 2]", "[2, 3]", "a_+nof.npy", "same resolution"});
}

#ifdef DAUG_CLI_BINARY
namespace {
std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
int compare(const std::string& args, const std::filesystem::path& log) {
  const std::string cmd = std::string(DAUG_CLI_BINARY) + " compare-heatmaps " + args + " > " + log.string() + " 2>&1";
  return std::system(cmd.c_str());
}
nlohmann::json row_of(const nlohmann::json& js, const std::string& schedule) {
  for (const auto& r : js["variants"])
    if (r["schedule"] == schedule) return r;
  ADD_FAILURE() << "no row " << schedule << " in " << js.dump(2);
  return {};
}
/// Pixels of colour (r,g,b) in columns [x0, x1) of a decoded [3,H,W] PNG.
int64_t count_colour(const at::Tensor& img, int64_t x0, int64_t x1, int r, int g, int b) {
  const at::Tensor s = img.slice(2, x0, x1);
  return (s[0].sub(r / 255.0).abs().lt(1e-3) & s[1].sub(g / 255.0).abs().lt(1e-3) & s[2].sub(b / 255.0).abs().lt(1e-3))
      .sum()
      .item<int64_t>();
}
}  // namespace

TEST(CompareHeatmapsCli, DirectoriesWithNamesPickTheMostStepsAndWriteTheTables) {
  daug::testing::TempDir tmp;
  // ddim50 (reference: the most steps): a, b, c. ddim10: a permuted, b = 2·b + 1, d extra, c missing.
  // ddim20: a = -a, b constant, c = c.
  write_dir(tmp / "d50", {"a", "b", "c"}, R"({"images": 5, "made": 5, "seconds": 10.0})");
  save(tmp / "d50" / "a_+nof.npy", kA);
  save(tmp / "d50" / "b_+nof.npy", kB);
  save(tmp / "d50" / "c_+nof.npy", kB);
  write_dir(tmp / "d10", {"a", "b", "d"}, R"({"images": 4, "made": 4, "seconds": 2.0})");
  save(tmp / "d10" / "a_+nof.npy", {0, 2, 1, 3, 5, 4});  // numpy.corrcoef with kA: 0.8857142857142858
  std::vector<float> lin, neg;
  for (float x : kB) lin.push_back(2 * x + 1);
  for (float x : kA) neg.push_back(-x);
  save(tmp / "d10" / "b_+nof.npy", lin);
  save(tmp / "d10" / "d_+nof.npy", kA);
  daug::testing::write_text(tmp / "d10" / "localization.json",
                            R"({"Overall": {"n": 4, "pointing_hit_rate": 0.75, "iobb_hit_rate": 0.5}})");
  write_dir(tmp / "d20", {"a", "b", "c"}, R"({"images": 3, "made": 0, "seconds": 0.1})");  // all found done
  save(tmp / "d20" / "a_+nof.npy", neg);
  save(tmp / "d20" / "b_+nof.npy", std::vector<float>(6, 1.0f));
  save(tmp / "d20" / "c_+nof.npy", kB);
  const std::string dirs = "--heatmaps " + (tmp / "d10").string() + " --heatmaps " + (tmp / "d20").string() +
                           " --heatmaps " + (tmp / "d50").string();
  ASSERT_EQ(compare(dirs + " --names ddim10,ddim20,ddim50 --out " + (tmp / "out").string(), tmp / "log.txt"), 0)
      << read(tmp / "log.txt");
  const auto js = nlohmann::json::parse(read(tmp / "out" / "tradeoff.json"));
  EXPECT_EQ(js["reference"]["schedule"], "ddim50");
  EXPECT_NE(js["reference"]["why"].get<std::string>().find("most sampling steps (50"), std::string::npos);
  const auto r10 = row_of(js, "ddim10"), r20 = row_of(js, "ddim20"), r50 = row_of(js, "ddim50");
  EXPECT_EQ(r10["matched"], 2);
  EXPECT_EQ(r10["only_reference"], 1);
  EXPECT_EQ(r10["only_variant"], 1);
  EXPECT_NEAR(r10["pearson"]["mean"].get<double>(), (0.8857142857142858 + 1.0) / 2, 1e-6);  // float32 files
  EXPECT_NEAR(r10["pearson"]["min"].get<double>(), 0.8857142857142858, 1e-6);
  EXPECT_DOUBLE_EQ(r10["seconds_per_image"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(r10["speedup"].get<double>(), 4.0);  // 2.0 s/image for the reference
  EXPECT_DOUBLE_EQ(r10["pointing_hit_rate"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(r10["iobb_hit_rate"].get<double>(), 0.5);
  EXPECT_EQ(r20["pearson"]["valid"], 2);
  EXPECT_EQ(r20["pearson"]["undefined"], 1);
  EXPECT_EQ(r20["pearson"]["constant"], 1);
  EXPECT_NEAR(r20["pearson"]["mean"].get<double>(), 0.0, 1e-6);  // -1 and 1
  EXPECT_TRUE(r20["seconds_per_image"].is_null());
  EXPECT_NE(r20["timing_note"].get<std::string>().find("all found done"), std::string::npos);
  EXPECT_TRUE(r50["reference"].get<bool>());
  EXPECT_NEAR(r50["pearson"]["mean"].get<double>(), 1.0, 1e-12);
  const std::string md = read(tmp / "out" / "tradeoff.md");
  EXPECT_NE(md.find("ddim20: r is undefined for 1 image(s) (1 constant map"), std::string::npos) << md;
  EXPECT_NE(md.find("ddim10: 1 reference heatmap(s) have no counterpart (first: c [No Finding, +])"), std::string::npos)
      << md;
  EXPECT_NE(md.find("ddim20: no timing"), std::string::npos) << md;
  EXPECT_NE(md.find("| ddim10 | 10 | 2/3 | 0.9429 |"), std::string::npos) << md;
  EXPECT_NE(read(tmp / "out" / "tradeoff.csv").find("ddim10,ddim10,10,0,"), std::string::npos);
  // The figure: two panels (r, and the hit rates since one variant has them), not blank; the r series' colour in
  // the left panel and the pointing-game colour in the right one.
  const at::Tensor img = daug::data::load_rgb(tmp / "out" / "tradeoff.png");
  ASSERT_EQ(img.size(1), 420);
  ASSERT_EQ(img.size(2), 2 * 620);
  EXPECT_GT(count_colour(img, 0, 620, 31, 119, 180), 40);  // 2 timed points + the line between them
  EXPECT_EQ(count_colour(img, 620, 1240, 31, 119, 180), 0);
  EXPECT_GT(count_colour(img, 620, 1240, 44, 160, 44), 20);  // pointing game (ddim10) + its legend marker
  EXPECT_GT(count_colour(img, 0, 1240, 0, 0, 0), 1500);      // axes, ticks, labels, titles

  // An explicit reference directory; without names nothing tells the steps, so --reference is required.
  ASSERT_EQ(
      compare(dirs + " --reference " + (tmp / "d10").string() + " --out " + (tmp / "out2").string(), tmp / "log2.txt"),
      0)
      << read(tmp / "log2.txt");
  EXPECT_EQ(nlohmann::json::parse(read(tmp / "out2" / "tradeoff.json"))["reference"]["schedule"], "d10");
  EXPECT_NE(compare(dirs + " --out " + (tmp / "out3").string(), tmp / "err.txt"), 0);
  EXPECT_NE(read(tmp / "err.txt").find("give --reference DIR, or --names with ddimN"), std::string::npos)
      << read(tmp / "err.txt");
  EXPECT_NE(compare(dirs + " --names a,b", tmp / "err2.txt"), 0);
  EXPECT_NE(read(tmp / "err2.txt").find("--names has 2 names for 3 --heatmaps directories"), std::string::npos);
  EXPECT_EQ(compare("--help", tmp / "help.txt"), 0);
  EXPECT_NE(read(tmp / "help.txt").find("usage: daug compare-heatmaps"), std::string::npos);
}

TEST(CompareHeatmapsCli, SweepDirectoryFindsStagesStepsAndLocalization) {
  daug::testing::TempDir tmp;
  // Three finished variants and a failed one, as `daug ablate` writes them; names without "ddim" so that the steps
  // must come from each run's effective.toml. v[full] has timestep_respacing = "" (T = 1000): the reference.
  nlohmann::json cmp = nlohmann::json::array();
  struct V {
    std::string name, spec;
    double seconds;
    std::vector<float> a;
    double pointing;
  };
  const std::vector<V> vars = {{"v[fast]", "ddim10", 1.0, {0, 2, 1, 3, 5, 4}, 0.5},
                               {"v[full]", "", 20.0, kA, 0.9},
                               {"v[mid]", "100", 4.0, kA, 0.8}};
  for (const auto& v : vars) {
    const auto run = tmp / "runs" / v.name, hm = tmp / "cache" / ("heatmaps-" + v.name),
               loc = tmp / "cache" / ("loc-" + v.name);
    daug::testing::write_text(run / "effective.toml",
                              "[run]\nname = 'v'\n\n[generator]\nplugin = \"ddpm\"  # G\n"
                              "diffusion_steps = 1000\ntimestep_respacing = '" +
                                  v.spec + "'\n");
    daug::testing::write_text(run / "stages.txt", "train_diffusion " + (tmp / "cache" / "train").string() +
                                                      "\nheatmaps " + hm.string() + "\nlocalize " + loc.string() +
                                                      "\n");
    daug::testing::write_text(tmp / "cache" / "train" / "metrics.json", R"({"loss_last": 0.1})");
    daug::testing::write_text(hm / "effective.toml", "[heatmaps]\ngenerator = 'generator'\nlimit = 2\n");
    write_dir(hm, {"a", "b"}, R"({"made": 2, "seconds": )" + std::to_string(2 * v.seconds) + "}");
    save(hm / "a_+nof.npy", v.a);
    save(hm / "b_+nof.npy", kB);
    daug::testing::write_text(
        loc / "metrics.json",
        R"({"localization": {"Nodule": {"pointing_hit_rate": 0.1}, "Overall": {"pointing_hit_rate": )" +
            std::to_string(v.pointing) + R"(, "iobb_hit_rate": 0.3}, "pixel": {"best_dice": 0.25}}})");
    cmp.push_back(
        {{"variant", v.name}, {"status", "ok"}, {"run_dir", run.string()}, {"metrics", nlohmann::json::object()}});
  }
  cmp.push_back({{"variant", "v[broken]"}, {"status", "failed: out of memory"}, {"run_dir", ""}});
  daug::testing::write_text(tmp / "sweep" / "comparison.json", cmp.dump(2));

  ASSERT_EQ(compare("--sweep " + (tmp / "sweep").string(), tmp / "log.txt"), 0) << read(tmp / "log.txt");
  const auto js = nlohmann::json::parse(read(tmp / "sweep" / "tradeoff.json"));  // --out defaults to the sweep
  EXPECT_EQ(js["reference"]["variant"], "v[full]");
  EXPECT_EQ(js["reference"]["schedule"], "T1000 (no respacing)");
  EXPECT_NE(js["reference"]["why"].get<std::string>().find("(1000, from its effective.toml)"), std::string::npos);
  ASSERT_EQ(js["variants"].size(), 3u);
  EXPECT_EQ(js["variants"][0]["schedule"], "ddim10");  // sorted by steps
  EXPECT_EQ(js["variants"][1]["schedule"], "100");
  EXPECT_EQ(js["variants"][1]["steps"], 100);
  const auto fast = row_of(js, "ddim10");
  EXPECT_NEAR(fast["pearson"]["mean"].get<double>(), (0.8857142857142858 + 1) / 2, 1e-6);
  EXPECT_DOUBLE_EQ(fast["seconds_per_image"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(fast["speedup"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(fast["pointing_hit_rate"].get<double>(), 0.5);  // Overall, not the Nodule row
  EXPECT_DOUBLE_EQ(fast["iobb_hit_rate"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(fast["best_dice"].get<double>(), 0.25);
  EXPECT_TRUE(fast["pixel_auroc"].is_null());
  EXPECT_EQ(fast["localization"]["source"], "[localize] metrics.json");
  EXPECT_EQ(js["skipped"][0], "v[broken] (failed: out of memory)");
  EXPECT_TRUE(std::filesystem::exists(tmp / "sweep" / "tradeoff.png"));

  // --reference by schedule; --stage that no run has; both modes at once.
  ASSERT_EQ(compare("--sweep " + (tmp / "sweep").string() + " --reference 100 --out " + (tmp / "o2").string(),
                    tmp / "log2.txt"),
            0)
      << read(tmp / "log2.txt");
  EXPECT_EQ(nlohmann::json::parse(read(tmp / "o2" / "tradeoff.json"))["reference"]["variant"], "v[mid]");
  EXPECT_NE(compare("--sweep " + (tmp / "sweep").string() + " --reference ddim7", tmp / "e1.txt"), 0);
  EXPECT_NE(read(tmp / "e1.txt").find("is not a variant of the sweep"), std::string::npos) << read(tmp / "e1.txt");
  EXPECT_NE(compare("--sweep " + (tmp / "sweep").string() + " --stage heatmaps_sigmoid", tmp / "e2.txt"), 0);
  EXPECT_NE(read(tmp / "e2.txt")
                .find("its run has no stage [heatmaps_sigmoid]; its stages: train_diffusion, heatmaps, localize"),
            std::string::npos)
      << read(tmp / "e2.txt");
  EXPECT_NE(compare("--sweep " + (tmp / "sweep").string() + " --heatmaps " + tmp.path().string(), tmp / "e3.txt"), 0);
  EXPECT_NE(read(tmp / "e3.txt").find("not both"), std::string::npos) << read(tmp / "e3.txt");
}
#endif
