// The localize stage on hand-made heatmaps, boxes and a mask: tables with reference rows, metrics.json,
// paired_items.json and the overlays (names say hit/miss; boxes and the maximum drawn where they must be).
#include "localize_stage.h"

#include "fakes/sample_list_source.h"
#include "test_support.h"

#include <daug/data/image.h>
#include <daug/data/npy.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace daug;

namespace {
std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Three 16×16 images a, b, c with boxes (and a mask for c) in 16-px coordinates.
class TruthSource final : public daug::testing::SampleListSource, public LocalizationTruth {
 public:
  explicit TruthSource(const std::filesystem::path& dir) {
    for (const char* id : {"a", "b", "c"}) {
      Sample s;
      s.id = id;
      s.image = dir / (std::string(id) + ".png");
      s.split = "test";
      s.labels.assign(14, 0.f);
      data::save_png(s.image, at::full({1, 16, 16}, 0.5f));
      samples_.push_back(s);
    }
    boxes_ = {
        {"a", "Mass", 0, 0, 8, 8, 16, 16}, {"b", "Mass", 8, 8, 8, 8, 16, 16}, {"c", "Nodule", 0, 6, 10, 10, 16, 16}};
    at::Tensor m = at::zeros({16, 16}, at::kByte);
    m.slice(0, 8, 16).slice(1, 0, 8).fill_(1);
    mask_ = dir / "c_mask.npy";
    data::save_npy(mask_, m);
  }
  std::string describe() const override { return "truth(3 images)"; }
  const std::vector<TruthBox>& truth_boxes() const override { return boxes_; }
  std::filesystem::path truth_mask(const std::string& id) const override { return id == "c" ? mask_ : ""; }

 private:
  std::vector<TruthBox> boxes_;
  std::filesystem::path mask_;
};

struct Plain final : daug::testing::SampleListSource {
  std::string describe() const override { return "plain"; }
};

at::Tensor peak_at(int64_t row, int64_t col) {
  at::Tensor h = at::zeros({4, 4});
  h[row][col] = 1;
  return h;
}
}  // namespace

TEST(LocalizeStage, TablesMetricsPairedItemsAndOverlays) {
  at::set_num_threads(1);
  daug::testing::TempDir tmp;
  auto src = std::make_shared<TruthSource>(tmp / "images");
  // a: peak in its box (hit); b: peak top-left, box bottom-right (miss); c: peak at row 3, col 0 → (2, 14) px: hit
  data::save_npy(tmp / "hm" / "a_+nof.npy", peak_at(0, 0));
  data::save_npy(tmp / "hm" / "b_+nof.npy", peak_at(0, 0));
  data::save_npy(tmp / "hm" / "c_+nof.npy", peak_at(3, 0));
  daug::testing::write_text(tmp / "hm" / "index.csv",
                            "id,split,file,target,direction\na,test,a_+nof.npy,No Finding,+\n"
                            "b,test,b_+nof.npy,No Finding,+\nc,test,c_+nof.npy,No Finding,+\n");
  plugins::LocalizeOptions o;
  o.overlay_size = 32;
  o.bootstrap_draws = 100;
  plugins::LocalizeStage st(o, src);
  daug::testing::TestContext bctx;
  std::filesystem::create_directories(tmp / "out");
  StageContext ctx{tmp / "out",
                   [&](const std::string& t, const std::string& name) -> std::filesystem::path {
                     if (t == "heatmaps" && name == artifacts::kHeatmapsIndex) return tmp / "hm" / "index.csv";
                     throw ConfigError("stage [" + t + "] has not run");
                   },
                   bctx,
                   0,
                   1,
                   false,
                   st.outputs()};
  st.run(ctx);
  const std::string csv = read(tmp / "out" / "localization.csv");
  EXPECT_NE(csv.find("Mass,heatmap,2,0.500000,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("Nodule,heatmap,1,1.000000,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("Overall,heatmap,3,0.666667,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("Overall,centred_gaussian,3,"), std::string::npos) << csv;
  const std::string md = read(tmp / "out" / "localization.md");
  EXPECT_NE(md.find("Pixel level"), std::string::npos) << md;  // c has a mask
  EXPECT_EQ(read(tmp / "out" / "summary.md"), md);

  const auto m = nlohmann::json::parse(read(tmp / "out" / "metrics.json"));
  EXPECT_DOUBLE_EQ(m["localization"]["Overall"]["pointing_hit_rate"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m["localization"]["Nodule"]["chance"].get<double>(), 100.0 / 256.0);
  EXPECT_TRUE(m["localization"]["Overall"]["uniform_noise"]["pointing_hit_rate"].is_number());
  // c's 4×4 heatmap against its mask (cells rows 2-3, cols 0-1): positives {1, 0, 0, 0}, negatives 12 zeros →
  // pooled AUROC = (12 + 3·12·½) / (4·12) = 0.625
  EXPECT_DOUBLE_EQ(m["localization"]["pixel"]["auroc_pooled"].get<double>(), 0.625);

  const auto p = nlohmann::json::parse(read(tmp / "out" / "paired_items.json"));
  EXPECT_EQ(p["format"], "daug.paired_items/1");
  ASSERT_FALSE(p["metrics"].empty());
  EXPECT_EQ(p["metrics"][0]["kind"], "mean");

  // Overlays: names tell hit/miss; a's box outline (green) runs along the top edge, its maximum (cell (0,0), centre
  // (4, 4) px at 32 px) carries the blue cross.
  const auto ov = tmp / "out" / "overlays";
  ASSERT_TRUE(std::filesystem::exists(ov / "a_Mass_hit.png"));
  EXPECT_TRUE(std::filesystem::exists(ov / "b_Mass_miss.png"));
  EXPECT_TRUE(std::filesystem::exists(ov / "c_Nodule_hit.png"));
  const at::Tensor a = data::load_rgb(ov / "a_Mass_hit.png");
  ASSERT_EQ(a.size(1), 32);
  EXPECT_GT(a[1][0][12].item<float>(), 0.95f);  // green top edge of the box [0, 16) px
  EXPECT_LT(a[0][0][12].item<float>(), 0.2f);
  EXPECT_GT(a[2][5][2].item<float>(), 0.95f);  // blue cross arm through (4..5, 0..8)
  EXPECT_LT(a[0][5][2].item<float>(), 0.2f);
  const at::Tensor c = data::load_rgb(ov / "c_Nodule_hit.png");
  EXPECT_GT(c[1][16][8].item<float>() + c[2][16][8].item<float>(), 1.9f);  // mask contour (cyan): top edge at 16 px
  EXPECT_LT(c[0][16][8].item<float>(), 0.1f);
  EXPECT_GT(c[1][12][8].item<float>(), 0.95f);  // the box's top edge (y = 6 → 12 px) in green
  EXPECT_LT(c[2][12][8].item<float>(), 0.2f);
}

TEST(LocalizeStage, SourceWithoutGroundTruthIsAConfigError) {
  daug::testing::TempDir tmp;
  EXPECT_THROW(plugins::LocalizeStage({}, std::make_shared<Plain>()), ConfigError);
  daug::testing::expect_error_contains([&] { plugins::LocalizeStage st({}, std::make_shared<Plain>()); },
                                       {"no ground-truth boxes or masks"});
}
