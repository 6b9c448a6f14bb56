// `daug evaluate-heatmaps` end to end through the `daug` binary (metric definitions: libs/localization).
#include "test_support.h"

#include <daug/data/npy.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

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
/// The fields of the first line of a CSV file that starts with `prefix` (empty if none).
std::vector<std::string> csv_row(const std::filesystem::path& file, const std::string& prefix) {
  std::istringstream in(read(file));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) {
      std::vector<std::string> f;
      std::istringstream ls(line);
      std::string x;
      while (std::getline(ls, x, ',')) f.push_back(x);
      return f;
    }
  ADD_FAILURE() << "no row " << prefix << " in " << read(file);
  return {};
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
  const std::string args = "--heatmaps " + (tmp / "hm").string() + " --boxes " + (tmp / "boxes.csv").string() +
                           " --out " + (tmp / "out").string();
  ASSERT_EQ(evaluate(args, tmp / "log.txt"), 0) << read(tmp / "log.txt");
  // Mass: 2 pairs, pointing 1/2, IoBB: a's detected cell [0,256)² inside the box → 1; b's → 0; chance 0.25
  // (the columns: label,map,n,pointing,ci_low,ci_high,iobb,ci_low,ci_high,mean_iobb,chance)
  EXPECT_EQ(csv_row(tmp / "out" / "localization.csv", "Mass,heatmap,"),
            (std::vector<std::string>{"Mass", "heatmap", "2", "0.500000", "0.000000", "1.000000", "0.500000",
                                      "0.000000", "1.000000", "0.500000", "0.250000"}));
  // the reference rows on the same boxes: the centred Gaussian's maximum (cell (1,1), centre (384, 384)) is in
  // both Mass boxes; the chance column is the same on every row of a label
  const auto g = csv_row(tmp / "out" / "localization.csv", "Mass,centred_gaussian,");
  ASSERT_EQ(g.size(), 11u);
  EXPECT_EQ(g[3], "1.000000");
  EXPECT_EQ(g[10], "0.250000");
  EXPECT_EQ(csv_row(tmp / "out" / "localization.csv", "Mass,uniform_noise,").size(), 11u);
  expect_file_has(tmp / "out" / "localization.md", "| Mass | heatmap | 2 | 0.5000 [0.000, 1.000] |");
  expect_file_has(tmp / "out" / "paired_items.json", "\"a|Mass\",1.0]");
  expect_file_has(tmp / "out" / "localization.md", "1 of 3 boxed image/label pairs were skipped");
  expect_file_has(tmp / "out" / "localization.md", "index.csv");
  // --strict turns the missing heatmap (listed in the index, file absent) into an error naming it
  EXPECT_NE(evaluate(args + " --strict", tmp / "err.txt"), 0);
  expect_file_has(tmp / "err.txt", "c_+nof.npy");
  // a bad number names file:line and column
  daug::testing::write_text(tmp / "bad.csv", "image,label,x,y,w,h\na.png,Mass,zero,0,5,5\n");
  EXPECT_NE(evaluate("--heatmaps " + (tmp / "hm").string() + " --boxes " + (tmp / "bad.csv").string(), tmp / "bad.txt"),
            0);
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
  expect_file_has(tmp / "old" / "localization.csv", "Mass,heatmap,1,1.000000");
  EXPECT_NE(evaluate("--heatmaps " + (tmp / "old").string() + boxes + " --target X", tmp / "t.txt"), 0);
  expect_file_has(tmp / "t.txt", "has only the columns id,split,file");
  // no index: an error that says so, or --suffix for a plain directory of <id><suffix> files
  daug::data::save_npy(tmp / "plain" / "a.heat.npy", a);
  EXPECT_NE(evaluate("--heatmaps " + (tmp / "plain").string() + boxes, tmp / "n.txt"), 0);
  expect_file_has(tmp / "n.txt", "index.csv does not exist");
  ASSERT_EQ(evaluate("--heatmaps " + (tmp / "plain").string() + boxes + " --suffix .heat.npy", tmp / "s.txt"), 0)
      << read(tmp / "s.txt");
  expect_file_has(tmp / "plain" / "localization.csv", "Mass,heatmap,1,1.000000");
  // two heatmaps for one id (both directions): ambiguous until --direction picks one
  daug::data::save_npy(tmp / "both" / "a_+nof.npy", a);
  daug::data::save_npy(tmp / "both" / "a_-nof.npy", peak_at(3, 3));
  write_index(tmp / "both", "a,test,a_+nof.npy,No Finding,+\na,test,a_-nof.npy,No Finding,-\n");
  EXPECT_NE(evaluate("--heatmaps " + (tmp / "both").string() + boxes, tmp / "amb.txt"), 0);
  expect_file_has(tmp / "amb.txt", "index.csv:3: id 'a' has a second heatmap");
  ASSERT_EQ(evaluate("--heatmaps " + (tmp / "both").string() + boxes + " --direction -", tmp / "d.txt"), 0)
      << read(tmp / "d.txt");
  expect_file_has(tmp / "both" / "localization.csv", "Mass,heatmap,1,0.000000");
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
  expect_file_has(tmp / "out" / "localization.csv", "Mass,heatmap,1,0.000000");
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

TEST(EvaluateHeatmapsCli, MasksGivePixelMetricsBesideTheReferenceMaps) {
  daug::testing::TempDir tmp;
  // a: peak at cell (0,0) of a 4×4 map; its 8×8 mask covers the top-left 2×2 pixels = exactly cell (0,0).
  // b: a constant heatmap, a mask of its bottom-right 2×2 pixels (cell (3,3)).
  daug::data::save_npy(tmp / "hm" / "a.npy", peak_at(0, 0));
  daug::data::save_npy(tmp / "hm" / "b.npy", at::ones({4, 4}));
  write_index(tmp / "hm", "a,test,a.npy,No Finding,+\nb,test,b.npy,No Finding,+\n");
  at::Tensor ma = at::zeros({8, 8}, at::kByte), mb = at::zeros({8, 8}, at::kByte);
  ma.slice(0, 0, 2).slice(1, 0, 2).fill_(1);
  mb.slice(0, 6, 8).slice(1, 6, 8).fill_(255);
  daug::data::save_npy(tmp / "masks" / "a.npy", ma);
  daug::data::save_npy(tmp / "masks" / "b.npy", mb);
  daug::testing::write_text(tmp / "boxes.csv", "image,label,x,y,w,h\na.png,Mass,0,0,16,16\nb.png,Mass,48,48,16,16\n");
  const std::string args = "--heatmaps " + (tmp / "hm").string() + " --boxes " + (tmp / "boxes.csv").string() +
                           " --box-image-size 64 --out " + (tmp / "out").string();
  ASSERT_EQ(evaluate(args + " --masks " + (tmp / "masks").string(), tmp / "log.txt"), 0) << read(tmp / "log.txt");
  // Pooled over both images' 32 cells: positives {1 (a), 1 (b)}, negatives 15 zeros (a) + 15 ones (b):
  // a's positive beats 15 and ties 15 → 22.5; b's positive beats 15, ties 15 → 22.5; AUROC = 45 / (2·30) = 0.75.
  // Per image: a 1.0, b 0.5 (constant) → 0.75. Best Dice: a is 1 at every t, b predicts nothing (0) → 0.5 at 0.05.
  expect_file_has(tmp / "out" / "localization.md", "| heatmap | 2 | 0.7500 | 0.7500 | 0.5000 | 0.05 |");
  expect_file_has(tmp / "out" / "localization.md", "| centred Gaussian | 2 |");
  expect_file_has(tmp / "out" / "localization.json", "\"auroc_pooled\": 0.75");
  // A missing mask: a note, or with --strict an error naming it.
  std::filesystem::remove(tmp / "masks" / "b.npy");
  ASSERT_EQ(evaluate(args + " --masks " + (tmp / "masks").string(), tmp / "log2.txt"), 0) << read(tmp / "log2.txt");
  expect_file_has(tmp / "out" / "localization.md", "1 of 2 images have no mask");
  EXPECT_NE(evaluate(args + " --strict --masks " + (tmp / "masks").string(), tmp / "err.txt"), 0);
  expect_file_has(tmp / "err.txt", "b.npy");
  EXPECT_NE(evaluate(args + " --masks " + (tmp / "nowhere").string(), tmp / "err2.txt"), 0);
  expect_file_has(tmp / "err2.txt", "is not a directory");
  EXPECT_NE(evaluate(args + " --bootstrap-draws 0", tmp / "err3.txt"), 0);
  expect_file_has(tmp / "err3.txt", "--bootstrap-draws must be >= 1, but got 0");
}
