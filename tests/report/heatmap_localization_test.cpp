// Localisation metrics on hand-made heatmaps and boxes, and `daug evaluate-heatmaps` end to end.
#include "heatmap_localization.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#ifdef DAUG_CLI_BINARY
#include <daug/data/npy.h>

#include <ATen/ATen.h>
#endif

using namespace daug::cli::loc;

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
  EXPECT_DOUBLE_EQ(union_area({{0, 0, 2, 2}, {1, 1, 2, 2}}, 10), 7.0);   // 4 + 4 − 1
  EXPECT_DOUBLE_EQ(union_area({{0, 0, 2, 2}, {0, 0, 2, 2}}, 10), 4.0);   // duplicates
  EXPECT_DOUBLE_EQ(union_area({{8, 8, 4, 4}}, 10), 4.0);                 // clipped to the image
  std::vector<float> v(4, 0.f);
  v[0] = 1.f;
  auto r = evaluate(grid(2, 2, v), {{0, 0, 5, 5}}, 10, 0.5);
  EXPECT_TRUE(r.pointing);
  EXPECT_DOUBLE_EQ(r.best_iobb, 1.0);  // detected box = cell (0,0) = [0,5)² inside the box
  EXPECT_DOUBLE_EQ(r.chance, 0.25);
}

#ifdef DAUG_CLI_BINARY
TEST(EvaluateHeatmapsCli, TablesFromFilesAndClearErrors) {
  daug::testing::TempDir tmp;
  // a: peak in the top-left quadrant (box there → hit); b: peak bottom-right (box top-left → miss)
  auto a = at::zeros({4, 4});
  a[0][0] = 1;
  auto b = at::zeros({4, 4});
  b[3][3] = 1;
  daug::data::save_npy(tmp / "hm" / "a_+nof.npy", a);
  daug::data::save_npy(tmp / "hm" / "b_+nof.npy", b);
  daug::testing::write_text(tmp / "boxes.csv",
                            "image,label,x,y,w,h\na.png,Mass,0,0,512,512\nb.png,Mass,0,0,512,512\n"
                            "c.png,Nodule,0,0,10,10\n");
  const std::string cmd = std::string(DAUG_CLI_BINARY) + " evaluate-heatmaps --heatmaps " + (tmp / "hm").string() +
                          " --boxes " + (tmp / "boxes.csv").string() + " --out " + (tmp / "out").string() +
                          " > " + (tmp / "log.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(tmp / "out" / "localization.csv");
  std::stringstream ss;
  ss << in.rdbuf();
  // Mass: 2 pairs, pointing 1/2, IoBB: a's detected cell [0,256)² inside the box → 1; b's → 0; chance 0.25
  EXPECT_NE(ss.str().find("Mass,2,0.500000,0.500000,0.500000,0.250000"), std::string::npos) << ss.str();
  std::ifstream md(tmp / "out" / "localization.md");
  std::stringstream ms;
  ms << md.rdbuf();
  EXPECT_NE(ms.str().find("1 of 3 boxed image/label pairs were skipped"), std::string::npos) << ms.str();
  // --strict turns the missing heatmap into an error naming it
  const std::string strict = cmd.substr(0, cmd.find(" >")) + " --strict > " + (tmp / "err.txt").string() + " 2>&1";
  EXPECT_NE(std::system(strict.c_str()), 0);
  std::ifstream er(tmp / "err.txt");
  std::stringstream es;
  es << er.rdbuf();
  EXPECT_NE(es.str().find("c_+nof.npy"), std::string::npos) << es.str();
  // a bad number names file:line and column
  daug::testing::write_text(tmp / "bad.csv", "image,label,x,y,w,h\na.png,Mass,zero,0,5,5\n");
  const std::string bad = std::string(DAUG_CLI_BINARY) + " evaluate-heatmaps --heatmaps " + (tmp / "hm").string() +
                          " --boxes " + (tmp / "bad.csv").string() + " > " + (tmp / "bad.txt").string() + " 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
  std::ifstream br(tmp / "bad.txt");
  std::stringstream bs;
  bs << br.rdbuf();
  EXPECT_NE(bs.str().find("bad.csv:2: column 'x' must be a number, but got 'zero'"), std::string::npos) << bs.str();
}
#endif
