// Tests of the shared stage code against independent facts: hand-computed AP and pos_weight, matplotlib's 'hot'
// end points, image preparation. (The training loop, AdamW and EMA are tested in libs/train.)
#include <daug/stages/common.h>

#include <daug/checkpoint.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>

#include <cmath>
#include <fstream>
#include <set>

using namespace daug;
using namespace daug::stages;

TEST(Metrics, PosWeightOnHandMadeLabels) {
  // 5 items, 3 super-classes: column 0 has 2 positives (3/2), column 1 has 1 (4/1), column 2 none (neutral 1).
  std::vector<std::vector<float>> y = {{1, 0, 0}, {1, 1, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  std::vector<int64_t> pos;
  auto w = pos_weights(y, &pos);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_DOUBLE_EQ(w[0], 1.5);
  EXPECT_DOUBLE_EQ(w[1], 4.0);
  EXPECT_DOUBLE_EQ(w[2], 1.0);
  EXPECT_EQ(pos, (std::vector<int64_t>{2, 1, 0}));
}

TEST(Metrics, AveragePrecisionMatchesSklearn) {
  // sklearn.metrics.average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333333333333333
  EXPECT_NEAR(average_precision({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.8333333333333333, 1e-12);
  // perfect ranking → 1; ties form one threshold: ([1,0],[0.5,0.5]) → precision 0.5 at recall 1 → 0.5
  EXPECT_DOUBLE_EQ(average_precision({0.9, 0.2, 0.8}, {1, 0, 1}), 1.0);
  EXPECT_DOUBLE_EQ(average_precision({0.5, 0.5}, {1, 0}), 0.5);
  EXPECT_TRUE(std::isnan(average_precision({0.5, 0.2}, {0, 0})));
}

TEST(Heatmaps, ShardsPartitionTheItems) {
  std::set<int64_t> all;
  for (int k = 0; k < 3; ++k)
    for (int64_t i : shard_indices(10, k, 3)) {
      EXPECT_EQ(i % 3, k);
      EXPECT_TRUE(all.insert(i).second);
    }
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(shard_indices(10, 1, 4), (std::vector<int64_t>{1, 5, 9}));
  daug::testing::expect_error_contains([] { shard_indices(10, 3, 3); }, {"--shard", "3/3"});
}

TEST(Heatmaps, HotColormapEndPoints) {
  at::Tensor x = at::tensor({0.0f, 0.365079f, 0.746032f, 1.0f}).view({1, 4});
  at::Tensor c = hot_colormap(x);  // [3,1,4]
  ASSERT_EQ(c.sizes(), (at::IntArrayRef{3, 1, 4}));
  EXPECT_NEAR(c[0][0][0].item<double>(), 0.0416, 1e-6);  // matplotlib hot(0) = (0.0416, 0, 0)
  EXPECT_NEAR(c[1][0][0].item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(c[0][0][1].item<double>(), 1.0, 1e-5);      // red saturates at 0.365
  EXPECT_NEAR(c[1][0][1].item<double>(), 0.0, 1e-5);
  EXPECT_NEAR(c[1][0][2].item<double>(), 1.0, 1e-5);      // green saturates at 0.746
  EXPECT_NEAR(c[2][0][2].item<double>(), 0.0, 1e-5);
  for (int ch = 0; ch < 3; ++ch) EXPECT_NEAR(c[ch][0][3].item<double>(), 1.0, 1e-6);  // hot(1) = white
}

TEST(Heatmaps, FileNamesFollowTheAuthors) {
  EXPECT_EQ(heatmap_file_name("00000001_000", +1, "nof"), "00000001_000_+nof.npy");
  EXPECT_EQ(heatmap_file_name("a", -1, "car"), "a_-car.npy");
}

TEST(Images, PrepareResizesNormalisesAndReplicates) {
  // 4×4 gray image; area filter to 2×2 = means of the 2×2 blocks: [[2.5, 4.5], [10.5, 12.5]] (values 0..15 / 15).
  at::Tensor gray = at::arange(16, at::kFloat).view({1, 4, 4}) / 15.0;
  ImagePrep prep{{3, 2, 2}, daug::data::Filter::area, Normalize::minmax};
  at::Tensor x = prepare_image(gray, prep);
  ASSERT_EQ(x.sizes(), (at::IntArrayRef{3, 2, 2}));
  // min-max of [2.5, 4.5, 10.5, 12.5] → [0, 0.2, 0.8, 1]
  at::Tensor expect = at::tensor({0.0f, 0.2f, 0.8f, 1.0f}).view({1, 2, 2}).expand({3, 2, 2});
  EXPECT_LT(daug::testing::max_abs_diff(x, expect), 1e-6);
  prep.normalize = Normalize::minmax_pm1;
  EXPECT_LT(daug::testing::max_abs_diff(prepare_image(gray, prep), expect * 2 - 1), 1e-6);
  prep.normalize = Normalize::none;
  prep.shape = {1, 2, 2};
  EXPECT_NEAR(prepare_image(gray, prep)[0][0][1].item<double>(), 4.5 / 15.0, 1e-6);
}

TEST(Images, DefaultFilterIsPilAntialiasedBilinear) {
  // The released diffusion transform is torchvision Resize on a PIL image = PIL bilinear, whose triangle widens by
  // the scale when shrinking. 4 → 2 (scale 2): output 0 is centred at input 1.0 with support 2, so input pixels
  // 0,1,2 weigh tri(−0.25), tri(0.25), tri(0.75) = 0.75, 0.75, 0.25 (sum 1.75). Values v = 4r + c (÷15):
  // out[0][0] = 5·(0.75·0 + 0.75·1 + 0.25·2)/1.75 / 15 = 5·(5/7)/15 = 5/21 (area would give 2.5/15 = 1/6).
  ImagePrep prep;
  EXPECT_EQ(prep.filter, daug::data::Filter::bilinear);
  prep.shape = {1, 2, 2};
  prep.normalize = Normalize::none;
  at::Tensor gray = at::arange(16, at::kFloat).view({1, 4, 4}) / 15.0;
  at::Tensor x = prepare_image(gray, prep);
  EXPECT_NEAR(x[0][0][0].item<double>(), 5.0 / 21.0, 1e-6);
  // out[1][1] = 5·(0.25·1 + 0.75·2 + 0.75·3)/1.75 / 15 = 5·(16/7)/15 = 16/21
  EXPECT_NEAR(x[0][1][1].item<double>(), 16.0 / 21.0, 1e-6);
}

TEST(Images, OptionNamesKeepTheirTomlSpelling) {
  EXPECT_EQ(kResizeFilters.names(), (std::vector<std::string>{"bilinear", "bicubic", "area", "nearest"}));
  EXPECT_EQ(kResizeFilters.value("area"), daug::data::Filter::area);
  EXPECT_EQ(kResizeFilters.name(daug::data::Filter::bicubic), "bicubic");
  EXPECT_EQ(kNormalizations.names(), (std::vector<std::string>{"minmax", "minmax_pm1", "none"}));
  EXPECT_EQ(kNormalizations.value("minmax_pm1"), Normalize::minmax_pm1);
}
