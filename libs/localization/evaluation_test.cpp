// The shared evaluation: reference rows beside the heatmap rows, pixel metrics, metrics.json and paired_items.json.
#include <daug/localization/evaluation.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace daug::loc;

namespace {
/// An h×w map, 0 except a 1 at (i, j).
Map peak(int64_t h, int64_t w, int64_t i, int64_t j) {
  Map m{h, w, std::vector<float>(static_cast<size_t>(h * w), 0.f)};
  m.v[static_cast<size_t>(i * w + j)] = 1.f;
  return m;
}
}  // namespace

TEST(LocalizationEvaluation, ReferenceRowsCisMetricsAndPairedItems) {
  EvaluationOptions o;
  o.draws = 200;
  Evaluation ev(o);
  // 8×8 maps, box image 16 px. a: peak in the box (hit); b: peak outside (miss); both boxes contain the centre cell
  // (3,3) → [6,8)², so the centred Gaussian hits both; c (Nodule): a 2-px box in a corner the Gaussian misses.
  const std::vector<Box> central = {{4, 4, 6, 6}};
  EXPECT_TRUE(ev.add_boxes("a", "Mass", central, 16, peak(8, 8, 3, 4)).pointing);
  EXPECT_FALSE(ev.add_boxes("b", "Mass", central, 16, peak(8, 8, 0, 0)).pointing);
  ev.add_boxes("c", "Nodule", {{0, 0, 2, 2}}, 16, peak(8, 8, 0, 0));
  const auto f = ev.render({"Nodule", "Mass"}, {});
  // Mass, heatmap: 1/2 pointing; chance 36/256; the Gaussian row: 2/2
  EXPECT_NE(f.csv.find("Mass,heatmap,2,0.500000,"), std::string::npos) << f.csv;
  EXPECT_NE(f.csv.find("Mass,centred_gaussian,2,1.000000,1.000000,1.000000,"), std::string::npos) << f.csv;
  EXPECT_NE(f.csv.find(",0.140625\n"), std::string::npos) << f.csv;
  EXPECT_NE(f.csv.find("Nodule,centred_gaussian,1,0.000000,"), std::string::npos) << f.csv;
  EXPECT_NE(f.csv.find("Overall,heatmap,3,0.666667,"), std::string::npos) << f.csv;
  EXPECT_LT(f.csv.find("Nodule,"), f.csv.find("Mass,"));  // label order as given, Overall last
  EXPECT_NE(f.md.find("| Mass | heatmap | 2 | 0.5000 ["), std::string::npos) << f.md;
  EXPECT_NE(f.md.find("|  | uniform noise | 2 |"), std::string::npos) << f.md;
  EXPECT_EQ(f.md.find("Pixel level"), std::string::npos);  // no masks, no pixel table

  const auto m = nlohmann::json::parse(f.metrics);
  EXPECT_DOUBLE_EQ(m["localization"]["Overall"]["pointing_hit_rate"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m["localization"]["Mass"]["centred_gaussian"]["pointing_hit_rate"].get<double>(), 1.0);
  EXPECT_TRUE(m["localization"]["Overall"]["uniform_noise"].contains("pointing_ci_low"));
  const double lo = m["localization"]["Overall"]["pointing_ci_low"],
               hi = m["localization"]["Overall"]["pointing_ci_high"];
  EXPECT_LE(lo, 2.0 / 3.0);
  EXPECT_GE(hi, 2.0 / 3.0);
  EXPECT_GE(lo, 0.0);
  EXPECT_LE(hi, 1.0);

  const auto p = nlohmann::json::parse(f.paired_items);
  EXPECT_EQ(p["format"], "daug.paired_items/1");
  bool found = false;
  for (const auto& metric : p["metrics"])
    if (metric["name"] == "localization.Overall.pointing_hit_rate") {
      found = true;
      EXPECT_EQ(metric["kind"], "mean");
      ASSERT_EQ(metric["items"].size(), 3u);
      EXPECT_EQ(metric["items"][0][0], "a|Mass");
      EXPECT_DOUBLE_EQ(metric["items"][0][1].get<double>(), 1.0);
      EXPECT_DOUBLE_EQ(metric["items"][1][1].get<double>(), 0.0);
    }
  EXPECT_TRUE(found) << f.paired_items;
}

TEST(LocalizationEvaluation, PixelTableFromMasks) {
  Evaluation ev({});
  // A perfect heatmap: the mask itself (plus a constant), AUROC 1 and Dice 1 at every t; a second image with an
  // empty mask enters the pooled AUROC only.
  Map h{2, 2, {1, 0, 0, 0}};
  ev.add_mask("a", h, {1, 0, 0, 0});
  ev.add_mask("b", Map{2, 2, {0, 0, 0, 0.5f}}, {0, 0, 0, 0});
  const auto f = ev.render({}, {});
  const auto j = nlohmann::json::parse(f.json);
  // pooled: positives {1}, negatives {0,0,0, 0,0,0,0.5}: 1 beats all → 1
  EXPECT_DOUBLE_EQ(j["pixel"]["auroc_pooled"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["pixel"]["auroc_mean_image"].get<double>(), 1.0);  // b has one class: left out
  EXPECT_EQ(j["pixel"]["n_images"].get<int>(), 2);
  EXPECT_EQ(j["pixel"]["n_images_dice"].get<int>(), 1);
  EXPECT_DOUBLE_EQ(j["pixel"]["best_dice"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["pixel"]["best_dice_threshold"].get<double>(), 0.05);  // the first of the tied maximum
  // the Gaussian on 2×2 is constant: predicts nothing (Dice 0), all pixels tied (AUROC 1/2)
  EXPECT_DOUBLE_EQ(j["pixel"]["centred_gaussian"]["best_dice"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["pixel"]["centred_gaussian"]["auroc_pooled"].get<double>(), 0.5);
  EXPECT_NE(f.md.find("| heatmap | 2 | 1.0000 | 1.0000 | 1.0000 | 0.05 |"), std::string::npos) << f.md;
  const auto m = nlohmann::json::parse(f.metrics);
  EXPECT_DOUBLE_EQ(m["localization"]["pixel"]["best_dice"].get<double>(), 1.0);
}
