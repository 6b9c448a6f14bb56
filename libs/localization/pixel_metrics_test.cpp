// Pixel metrics, reference maps and the bootstrap CI against hand computations, closed forms and numpy fixtures
// (testdata/*.txt, written by /usr/bin/python3 with a brute-force pairwise AUROC and a kron/block-mean resampling).
#include <daug/localization/pixel_metrics.h>

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

using namespace daug::loc;

namespace {
template <class T>
std::vector<T> parse_line(std::istream& in) {
  std::string line;
  std::getline(in, line);
  std::istringstream ss(line);
  std::vector<T> v;
  double x;
  while (ss >> x) v.push_back(static_cast<T>(x));
  return v;
}
std::ifstream fixture(const std::string& name) {
  std::ifstream in(std::string(DAUG_LOCALIZATION_FIXTURES) + "/" + name);
  EXPECT_TRUE(in.good()) << name;
  return in;
}
}  // namespace

TEST(PixelMetrics, AurocByHandWithTies) {
  // positives {3, 1}, negatives {1, 0}: pairs (3>1) 1, (3>0) 1, (1=1) 1/2, (1>0) 1 → 3.5 / 4
  EXPECT_DOUBLE_EQ(auroc({3, 1, 1, 0}, {1, 1, 0, 0}), 0.875);
  EXPECT_DOUBLE_EQ(auroc({1, 1, 1, 1}, {1, 0, 1, 0}), 0.5);  // all tied
  EXPECT_DOUBLE_EQ(auroc({0, 1, 2}, {0, 0, 1}), 1.0);
  EXPECT_DOUBLE_EQ(auroc({0, 1, 2}, {1, 1, 0}), 0.0);
  EXPECT_TRUE(std::isnan(auroc({0, 1}, {1, 1})));  // one class only
  EXPECT_TRUE(std::isnan(auroc({0, 1}, {0, 0})));
}

TEST(PixelMetrics, AurocMatchesBruteForcePairsFromNumpy) {
  auto in = fixture("auroc_ties.txt");
  const double want = parse_line<double>(in).at(0);
  const auto s = parse_line<float>(in);
  const auto y = parse_line<uint8_t>(in);
  ASSERT_EQ(s.size(), 300u);
  ASSERT_EQ(y.size(), 300u);
  EXPECT_NEAR(auroc(s, y), want, 1e-12);
}

TEST(PixelMetrics, MaskToGridByAreaFraction) {
  // 2×2 mask onto 1×1: half the area (2 of 4) is enough, a quarter is not
  EXPECT_EQ(mask_to_grid({1, 1, 0, 0}, 2, 2, 1, 1), std::vector<uint8_t>{1});
  EXPECT_EQ(mask_to_grid({1, 0, 0, 0}, 2, 2, 1, 1), std::vector<uint8_t>{0});
  // 4×4 → 2×2 block means; identity when the sizes match
  EXPECT_EQ(mask_to_grid({1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1}, 4, 4, 2, 2),
            (std::vector<uint8_t>{1, 0, 0, 1}));
  EXPECT_EQ(mask_to_grid({0, 1, 1, 0}, 2, 2, 2, 2), (std::vector<uint8_t>{0, 1, 1, 0}));
  // 1×3 → 1×2: cell 0 = pixel 0 + half of pixel 1 (area 1.5); mask {0,1,0}: 0.5/1.5 < 0.5 → 0
  EXPECT_EQ(mask_to_grid({0, 1, 0}, 1, 3, 1, 2), (std::vector<uint8_t>{0, 0}));
  EXPECT_EQ(mask_to_grid({1, 1, 0}, 1, 3, 1, 2), (std::vector<uint8_t>{1, 0}));  // 1.5/1.5 and 0.5/1.5
  // sizes that do not divide (10×7 → 4×3), against numpy's kron + block mean
  auto in = fixture("mask_grid.txt");
  const auto m = parse_line<uint8_t>(in);
  const auto want = parse_line<uint8_t>(in);
  EXPECT_EQ(mask_to_grid(m, 10, 7, 4, 3), want);
}

TEST(PixelMetrics, DiceCurveOnTheMinMaxMap) {
  // values 0, 1, 2, 3 → min-max 0, 1/3, 2/3, 1; truth = last two cells
  Map m{1, 4, {0, 1, 2, 3}};
  const std::vector<uint8_t> truth = {0, 0, 1, 1};
  const auto d = dice_curve(m, truth, {0.2, 0.5, 0.9});
  EXPECT_DOUBLE_EQ(d[0], 2.0 * 2 / (3 + 2));  // predicts 3 cells, 2 right
  EXPECT_DOUBLE_EQ(d[1], 1.0);                // predicts exactly the truth
  EXPECT_DOUBLE_EQ(d[2], 2.0 * 1 / (1 + 2));  // predicts the top cell
  // a constant map predicts nothing: Dice 0 against a non-empty truth
  EXPECT_DOUBLE_EQ(dice_curve(Map{1, 2, {5, 5}}, {1, 0}, {0.5})[0], 0.0);
  ASSERT_EQ(dice_thresholds().size(), 19u);
  EXPECT_DOUBLE_EQ(dice_thresholds().front(), 0.05);
  EXPECT_DOUBLE_EQ(dice_thresholds().back(), 0.95);
}

TEST(PixelMetrics, ReferenceMaps) {
  // Gaussian: σ = side/4; pixel centres at i + 0.5; the four central cells tie, the first in row-major order is the
  // argmax; a corner cell of an 8×8 map is at distance √(3.5² + 3.5²) from the centre.
  const Map g = centred_gaussian_map(8, 8);
  EXPECT_FLOAT_EQ(g.at(3, 3), static_cast<float>(std::exp(-0.5 / 8.0)));  // r² = 0.5, 2σ² = 8
  EXPECT_FLOAT_EQ(g.at(0, 0), static_cast<float>(std::exp(-24.5 / 8.0)));
  EXPECT_EQ(g.at(3, 3), g.at(4, 4));
  EXPECT_TRUE(pointing_hit(g, {{3, 3, 1, 1}}, 8));  // argmax (3,3): centre (3.5, 3.5)
  EXPECT_FALSE(pointing_hit(g, {{4, 4, 1, 1}}, 8));
  // Noise: in [0,1), reproducible from the seed, different for another seed, mean ≈ 1/2 (4096 values: SE 0.0045)
  const Map a = uniform_noise_map(64, 64, 7), b = uniform_noise_map(64, 64, 7), c = uniform_noise_map(64, 64, 8);
  EXPECT_EQ(a.v, b.v);
  EXPECT_NE(a.v, c.v);
  double s = 0;
  for (float x : a.v) {
    ASSERT_GE(x, 0.f);
    ASSERT_LT(x, 1.f);
    s += x;
  }
  EXPECT_NEAR(s / 4096, 0.5, 0.02);
}

TEST(PixelMetrics, BootstrapPercentileInterval) {
  // constant values: every resample has the same mean
  const auto c = bootstrap_mean_ci(std::vector<double>(50, 0.25), 1000, 0);
  EXPECT_DOUBLE_EQ(c.low, 0.25);
  EXPECT_DOUBLE_EQ(c.high, 0.25);
  // p = 0.5, n = 400: the normal approximation gives 0.5 ± 1.96·√(0.25/400) = 0.5 ± 0.049
  std::vector<double> v(400, 0.0);
  for (size_t k = 0; k < 200; ++k) v[k] = 1.0;
  const auto ci = bootstrap_mean_ci(v, 1000, 0);
  EXPECT_NEAR(ci.low, 0.451, 0.01);
  EXPECT_NEAR(ci.high, 0.549, 0.01);
  // a fixed seed gives the same interval; another seed a (slightly) different one
  const auto again = bootstrap_mean_ci(v, 1000, 0);
  EXPECT_EQ(ci.low, again.low);
  EXPECT_EQ(ci.high, again.high);
  const auto other = bootstrap_mean_ci(v, 1000, 1);
  EXPECT_TRUE(other.low != ci.low || other.high != ci.high);
  EXPECT_TRUE(std::isnan(bootstrap_mean_ci({}, 1000, 0).low));
}
