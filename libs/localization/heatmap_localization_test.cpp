// Localisation metrics on hand-made heatmaps and boxes.
#include <daug/localization/heatmap_localization.h>

#include <gtest/gtest.h>

using namespace daug::loc;

namespace {
Map grid(int64_t h, int64_t w, std::vector<float> v) { return Map{h, w, std::move(v)}; }
}  // namespace

TEST(Localization, PointingGameRescalesTheArgmax) {
  // 4×4 map, peak at row 1, col 2; box image 8×8 → centre (x, y) = (2.5·2, 1.5·2) = (5, 3)
  std::vector<float> v(16, 0.f);
  v[1 * 4 + 2] = 1.f;
  auto m = grid(4, 4, v);
  EXPECT_TRUE(pointing_hit(m, {{4, 2, 2, 2}}, 8));
  EXPECT_FALSE(pointing_hit(m, {{0, 0, 2, 2}}, 8));
  EXPECT_TRUE(pointing_hit(m, {{0, 0, 2, 2}, {5, 3, 1, 1}}, 8));  // any box; edges count
}

TEST(Localization, DetectedBoxIsTheLargestBlobsBoundingBox) {
  // 4×4: a 2×3 blob (rows 0-1, cols 0-2) and a single pixel at (3,3); S = 8 → 2 px per cell
  std::vector<float> v(16, 0.f);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) v[i * 4 + j] = 1.f;
  v[15] = 1.f;
  auto det = detected_box(grid(4, 4, v), 0.5, 8);
  EXPECT_DOUBLE_EQ(det.x, 0);
  EXPECT_DOUBLE_EQ(det.y, 0);
  EXPECT_DOUBLE_EQ(det.w, 6);
  EXPECT_DOUBLE_EQ(det.h, 4);
  EXPECT_DOUBLE_EQ(iobb(det, {0, 0, 3, 4}), 12.0 / 24.0);  // intersection 3×4 over detected 6×4
  EXPECT_DOUBLE_EQ(iobb(det, {6, 6, 2, 2}), 0.0);
  // diagonal neighbours are connected (8-connectivity): (0,0)+(1,1) → one 2×2-cell box
  std::vector<float> d(9, 0.f);
  d[0] = d[4] = 1.f;
  auto det2 = detected_box(grid(3, 3, d), 0.5, 3);
  EXPECT_DOUBLE_EQ(det2.w, 2);
  EXPECT_DOUBLE_EQ(det2.h, 2);
  // a constant map detects nothing
  EXPECT_DOUBLE_EQ(detected_box(grid(2, 2, {3, 3, 3, 3}), 0.5, 8).w, 0);
  EXPECT_DOUBLE_EQ(iobb(Box{}, {0, 0, 1, 1}), 0.0);
}

TEST(Localization, ThresholdIsOnTheMinMaxMap) {
  // values 10..13 → min-max 0, 1/3, 2/3, 1: threshold 0.5 keeps the last two cells (a 1×2 blob)
  auto det = detected_box(grid(1, 4, {10, 11, 12, 13}), 0.5, 4);
  EXPECT_DOUBLE_EQ(det.x, 2);
  EXPECT_DOUBLE_EQ(det.w, 2);
}

TEST(Localization, UnionAreaAndChance) {
  EXPECT_DOUBLE_EQ(union_area({{0, 0, 2, 2}, {1, 1, 2, 2}}, 10), 7.0);  // 4 + 4 − 1
  EXPECT_DOUBLE_EQ(union_area({{0, 0, 2, 2}, {0, 0, 2, 2}}, 10), 4.0);  // duplicates
  EXPECT_DOUBLE_EQ(union_area({{8, 8, 4, 4}}, 10), 4.0);                // clipped to the image
  std::vector<float> v(4, 0.f);
  v[0] = 1.f;
  auto r = evaluate(grid(2, 2, v), {{0, 0, 5, 5}}, 10, 0.5);
  EXPECT_TRUE(r.pointing);
  EXPECT_DOUBLE_EQ(r.best_iobb, 1.0);  // detected box = cell (0,0) = [0,5)² inside the box
  EXPECT_DOUBLE_EQ(r.chance, 0.25);
}
