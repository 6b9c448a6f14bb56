// Localisation metrics on hand-made heatmaps and boxes, and `daug evaluate-heatmaps` end to end.
#include "heatmap_localization.h"

#include "test_support.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#ifdef DAUG_CLI_BINARY
#include <daug/data/npy.h>

#include <ATen/ATen.h>
#endif

using namespace daug::plugins::loc;

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
namespace {
std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
/// Runs `daug evaluate-heatmaps ARGS`, output to `log`; returns the exit status of the shell.
int evaluate(const std::string& args, const std::filesystem::path& log) {
  const std::string cmd = std::string(DAUG_CLI_BINARY) + " evaluate-heatmaps " + args + " > " + log.string() + " 2>&1";
  return std::system(cmd.c_str());
}
/// Expects `file` to contain `needle`; prints the file otherwise.
void expect_file_has(const std::filesystem::path& file, const std::string& needle) {
  const std::string text = read(file);
  EXPECT_NE(text.find(needle), std::string::npos) << text;
}
/// Writes <dir>/index.csv as the heatmaps stage publishes it: the header, then `rows`.
void write_index(const std::filesystem::path& dir, const std::string& rows) {
  daug::testing::write_text(dir / "index.csv", "id,split,file,target,direction\n" + rows);
}
/// A 4×4 heatmap: 0 but for a 1 at (row, col).
at::Tensor peak_at(int64_t row, int64_t col) {
  at::Tensor h = at::zeros({4, 4});
  h[row][col] = 1;
  return h;
}
}  // namespace

TEST(EvaluateHeatmapsCli, TablesFromTheHeatmapIndexAndClearErrors) {
  daug::testing::TempDir tmp;
  // a: peak in the top-left quadrant (box there → hit); b: peak bottom-right (box top-left → miss)
  // The file names are whatever the index says (the heatmaps stage's naming is not assumed).
  daug::data::save_npy(tmp / "hm" / "a_+nof.npy", peak_at(0, 0));
  daug::data::save_npy(tmp / "hm" / "b-heat.npy", peak_at(3, 3));
  write_index(tmp / "hm",
              "a,test,a_+nof.npy,No Finding,+\nb,test,b-heat.npy,No Finding,+\nc,test,c_+nof.npy,No Finding,+\n");
  daug::testing::write_text(tmp / "boxes.csv",
                            "image,label,x,y,w,h\na.png,Mass,0,0,512,512\nb.png,Mass,0,0,512,512\n"
                            "c.png,Nodule,0,0,10,10\n");
  const std::string args =
      "--heatmaps " + (tmp / "hm").string() + " --boxes " + (tmp / "boxes.csv").string() + " --out " + (tmp / "out").string();
  ASSERT_EQ(evaluate(args, tmp / "log.txt"), 0) << read(tmp / "log.txt");
  // Mass: 2 pairs, pointing 1/2, IoBB: a's detected cell [0,256)² inside the box → 1; b's → 0; chance 0.25
  expect_file_has(tmp / "out" / "localization.csv", "Mass,2,0.500000,0.500000,0.500000,0.250000");
  expect_file_has(tmp / "out" / "localization.md", "1 of 3 boxed image/label pairs were skipped");
  expect_file_has(tmp / "out" / "localization.md", "index.csv");
  // --strict turns the missing heatmap (listed in the index, file absent) into an error naming it
  EXPECT_NE(evaluate(args + " --strict", tmp / "err.txt"), 0);
  expect_file_has(tmp / "err.txt", "c_+nof.npy");
  // a bad number names file:line and column
  daug::testing::write_text(tmp / "bad.csv", "image,label,x,y,w,h\na.png,Mass,zero,0,5,5\n");
  EXPECT_NE(evaluate("--heatmaps " + (tmp / "hm").string() + " --boxes " + (tmp / "bad.csv").string(), tmp / "bad.txt"), 0);
  expect_file_has(tmp / "bad.txt", "bad.csv:2: column 'x' must be a number, but got 'zero'");
  // --help prints the usage and succeeds
  EXPECT_EQ(evaluate("--help", tmp / "help.txt"), 0);
  expect_file_has(tmp / "help.txt", "usage: daug evaluate-heatmaps");
}

TEST(EvaluateHeatmapsCli, OldIndexSuffixModeAndAmbiguousIds) {
  daug::testing::TempDir tmp;
  auto a = peak_at(0, 0);
  daug::data::save_npy(tmp / "old" / "a_+nof.npy", a);
  daug::testing::write_text(tmp / "boxes.csv", "image,label,x,y,w,h\na.png,Mass,0,0,512,512\n");
  const std::string boxes = " --boxes " + (tmp / "boxes.csv").string();
  // the 3-column index the heatmaps stage wrote before it recorded target and direction
  daug::testing::write_text(tmp / "old" / "index.csv", "id,split,file\na,test,a_+nof.npy\n");
  ASSERT_EQ(evaluate("--heatmaps " + (tmp / "old").string() + boxes, tmp / "log.txt"), 0) << read(tmp / "log.txt");
  expect_file_has(tmp / "old" / "localization.csv", "Mass,1,1.000000");
  EXPECT_NE(evaluate("--heatmaps " + (tmp / "old").string() + boxes + " --target X", tmp / "t.txt"), 0);
  expect_file_has(tmp / "t.txt", "has only the columns id,split,file");
  // no index: an error that says so, or --suffix for a plain directory of <id><suffix> files
  daug::data::save_npy(tmp / "plain" / "a.heat.npy", a);
  EXPECT_NE(evaluate("--heatmaps " + (tmp / "plain").string() + boxes, tmp / "n.txt"), 0);
  expect_file_has(tmp / "n.txt", "index.csv does not exist");
  ASSERT_EQ(evaluate("--heatmaps " + (tmp / "plain").string() + boxes + " --suffix .heat.npy", tmp / "s.txt"), 0)
      << read(tmp / "s.txt");
  expect_file_has(tmp / "plain" / "localization.csv", "Mass,1,1.000000");
  // two heatmaps for one id (both directions): ambiguous until --direction picks one
  daug::data::save_npy(tmp / "both" / "a_+nof.npy", a);
  daug::data::save_npy(tmp / "both" / "a_-nof.npy", peak_at(3, 3));
  write_index(tmp / "both", "a,test,a_+nof.npy,No Finding,+\na,test,a_-nof.npy,No Finding,-\n");
  EXPECT_NE(evaluate("--heatmaps " + (tmp / "both").string() + boxes, tmp / "amb.txt"), 0);
  expect_file_has(tmp / "amb.txt", "index.csv:3: id 'a' has a second heatmap");
  ASSERT_EQ(evaluate("--heatmaps " + (tmp / "both").string() + boxes + " --direction -", tmp / "d.txt"), 0)
      << read(tmp / "d.txt");
  expect_file_has(tmp / "both" / "localization.csv", "Mass,1,0.000000");
}
TEST(EvaluateHeatmapsCli, NanHeatmapsAreInvalidAndBadBoxesAreErrors) {
  daug::testing::TempDir tmp;
  // The review's H_nan: an all-NaN map with a full-image box scored as a pointing-game hit (argmax stuck at
  // pixel 0). n: all NaN; i: one +Inf pixel; a: a valid map whose peak misses the box.
  daug::data::save_npy(tmp / "hm" / "n_+nof.npy", at::full({4, 4}, std::numeric_limits<float>::quiet_NaN()));
  auto inf = peak_at(0, 0);
  inf[2][2] = std::numeric_limits<float>::infinity();
  daug::data::save_npy(tmp / "hm" / "i_+nof.npy", inf);
  daug::data::save_npy(tmp / "hm" / "a_+nof.npy", peak_at(3, 3));
  write_index(tmp / "hm",
              "n,test,n_+nof.npy,No Finding,+\ni,test,i_+nof.npy,No Finding,+\n"
              "a,test,a_+nof.npy,No Finding,+\n");
  daug::testing::write_text(tmp / "boxes.csv",
                            "image,label,x,y,w,h\nn.png,Mass,0,0,1024,1024\n"
                            "i.png,Mass,0,0,1024,1024\na.png,Mass,0,0,512,512\n");
  const std::string hm = "--heatmaps " + (tmp / "hm").string();
  const std::string args = hm + " --boxes " + (tmp / "boxes.csv").string() + " --out " + (tmp / "out").string();
  ASSERT_EQ(evaluate(args, tmp / "log.txt"), 0) << read(tmp / "log.txt");
  // Only a counts: 1 pair, pointing 0 (not 2/3 with the NaN and Inf maps scored as hits).
  expect_file_has(tmp / "out" / "localization.csv", "Mass,1,0.000000");
  expect_file_has(tmp / "out" / "localization.md", "2 of 3 boxed image/label pairs were left out");
  expect_file_has(tmp / "out" / "localization.md", "n_+nof.npy (16 of 16 values NaN/Inf)");
  expect_file_has(tmp / "out" / "localization.json", "\"invalid\": 2");
  expect_file_has(tmp / "log.txt", "warning: 2 of 3 heatmaps hold NaN/Inf values");
  EXPECT_NE(evaluate(args + " --strict", tmp / "strict.txt"), 0);
  expect_file_has(tmp / "strict.txt", "i_+nof.npy (1 of 16 values NaN/Inf)");
  // Nothing valid at all: an error, not a table of zeros.
  daug::testing::write_text(tmp / "nan_only.csv", "image,label,x,y,w,h\nn.png,Mass,0,0,1024,1024\n");
  EXPECT_NE(evaluate(hm + " --boxes " + (tmp / "nan_only.csv").string() + " --out " + (tmp / "o2").string(),
                     tmp / "none.txt"),
            0);
  expect_file_has(tmp / "none.txt", "1 of 1 boxed image/label pairs have a heatmap with NaN/Inf values");
  // Boxes with non-finite coordinates or outside the image: errors naming file:line.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"a.png,Mass,nan,0,5,5", "bad.csv:3: column 'x' must be a finite number, but got 'nan'"},
      {"a.png,Mass,0,0,inf,5", "bad.csv:3: column 'w' must be a finite number, but got 'inf'"},
      {"a.png,Mass,5000,0,10,10",
       "bad.csv:3: box x=5000 y=0 w=10 h=10 (right 5010, bottom 10) is not inside the "
       "1024x1024 image"},
      {"a.png,Mass,-3,0,10,10", "bad.csv:3: box x=-3"},
      {"a.png,Mass,1000,1000,25,24", "(right 1025, bottom 1024)"}};
  for (const auto& [row, want] : bad) {
    daug::testing::write_text(tmp / "bad.csv", "image,label,x,y,w,h\na.png,Mass,0,0,5,5\n" + row + "\n");
    EXPECT_NE(evaluate(hm + " --boxes " + (tmp / "bad.csv").string(), tmp / "bad.txt"), 0) << row;
    expect_file_has(tmp / "bad.txt", want);
  }
  // Half a pixel past the edge is rounding, not an error.
  daug::testing::write_text(tmp / "edge.csv", "image,label,x,y,w,h\na.png,Mass,-0.4,0,1024.8,1024\n");
  EXPECT_EQ(
      evaluate(hm + " --boxes " + (tmp / "edge.csv").string() + " --out " + (tmp / "o3").string(), tmp / "edge.txt"), 0)
      << read(tmp / "edge.txt");
  // --help prints the usage and exits 0 (the review saw exit 1).
  EXPECT_EQ(evaluate("--help", tmp / "help.txt"), 0);
  expect_file_has(tmp / "help.txt", "NaN/Inf");
}
#endif
