// The raster plotter against independent facts: where a log/linear axis puts a value (the midpoint of [0.1, 10] on a
// log axis is 1), which pixels a marker and a glyph cover, tick positions, and the PNG as decoded by libs/data.
#include <daug/plot/plot.h>

#include <daug/data/image.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

using namespace daug::plot;

namespace {
/// A panel with fixed limits x ∈ [0.1, 10] (log), y ∈ [0, 1], one unconnected series.
Panel fixed_panel(std::vector<double> x, std::vector<double> y, Rgb c) {
  Panel p;
  p.title = "test";
  p.x = {"seconds per image", true, 0.1, 10.0};
  p.y = {"mean Pearson r", false, 0.0, 1.0};
  Series s;
  s.x = std::move(x);
  s.y = std::move(y);
  s.color = c;
  s.connect = false;
  p.series.push_back(s);
  return p;
}
constexpr Rgb kRed{200, 0, 0};
}  // namespace

TEST(Plot, AxisMappingLogAndLinear) {
  const Figure fig = render({fixed_panel({1.0}, {0.5}, kRed)}, 400, 300);
  ASSERT_EQ(fig.frames.size(), 1u);
  const Frame& f = fig.frames[0];
  // log10 is linear in pixels: 0.1 → left, 10 → right, 1 (the log midpoint) → the middle; y 0.5 → the middle.
  EXPECT_EQ(f.px(0.1), f.left);
  EXPECT_EQ(f.px(10.0), f.right);
  EXPECT_NEAR(f.px(1.0), (f.left + f.right) / 2.0, 0.5);
  EXPECT_NEAR(f.px(std::sqrt(10.0)), f.left + 0.75 * (f.right - f.left), 0.5);
  EXPECT_EQ(f.py(0.0), f.bottom);
  EXPECT_EQ(f.py(1.0), f.top);
  EXPECT_NEAR(f.py(0.25), f.bottom - 0.25 * (f.bottom - f.top), 0.5);
}

TEST(Plot, MarkersLandWhereTheAxesPutThemAndNowhereElse) {
  const std::vector<double> xs = {0.2, 1.0, 5.0}, ys = {0.1, 0.5, 0.9};
  const Figure fig = render({fixed_panel(xs, ys, kRed)}, 480, 320);
  const Frame& f = fig.frames[0];
  std::vector<std::pair<int, int>> centres;
  for (size_t i = 0; i < xs.size(); ++i) {
    const int x = f.px(xs[i]), y = f.py(ys[i]);
    centres.emplace_back(x, y);
    EXPECT_EQ(fig.canvas.at(x, y), kRed) << "point " << i << " at (" << x << ", " << y << ")";
    EXPECT_EQ(fig.canvas.at(x + 2, y), kRed);
  }
  // Every red pixel belongs to a marker (radius 4): no stray drawing in the series colour.
  int64_t red = 0;
  for (int y = 0; y < fig.canvas.height(); ++y)
    for (int x = 0; x < fig.canvas.width(); ++x) {
      if (fig.canvas.at(x, y) != kRed) continue;
      ++red;
      bool near = false;
      for (auto [cx, cy] : centres) near = near || (std::abs(x - cx) <= 4 && std::abs(y - cy) <= 4);
      EXPECT_TRUE(near) << "red pixel at (" << x << ", " << y << ")";
    }
  EXPECT_GT(red, 3 * 20);  // a filled disc of radius 4 has > 20 pixels
}

TEST(Plot, AxesTicksAndLabelsAreDrawn) {
  const Figure fig = render({fixed_panel({1.0}, {0.5}, kRed)}, 400, 300);
  const Frame& f = fig.frames[0];
  const Canvas& cv = fig.canvas;
  // The axes: black along the left and bottom edges of the plot area.
  for (int y = f.top; y <= f.bottom; y += 7) EXPECT_EQ(cv.at(f.left, y), kBlack) << y;
  for (int x = f.left; x <= f.right; x += 7) EXPECT_EQ(cv.at(x, f.bottom), kBlack) << x;
  // A tick mark below the axis at x = 1 (a power of ten on the log axis) and left of it at y = 0.5.
  EXPECT_EQ(cv.at(f.px(1.0), f.bottom + 3), kBlack);
  EXPECT_EQ(cv.at(f.left - 3, f.py(0.4)), kBlack);
  // Tick labels: ink left of the y axis (the labels and the vertical title) and below the x ticks.
  auto ink = [&](int x0, int y0, int x1, int y1) {
    int n = 0;
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) n += cv.at(x, y) == kBlack;
    return n;
  };
  EXPECT_GT(ink(0, f.top, f.left - 8, f.bottom), 100);
  EXPECT_GT(ink(f.left, f.bottom + 8, f.right, cv.height() - 1), 100);
  EXPECT_GT(cv.count_not(kWhite), 2000);
}

TEST(Plot, GlyphsAndTextWidth) {
  Canvas cv(40, 20);
  // '1' is rows 04 0C 04 04 04 04 0E: its top row has only column 2 set, its bottom row columns 1..3.
  EXPECT_EQ(cv.text(10, 5, "1", kBlack), 5);
  EXPECT_EQ(cv.at(12, 5), kBlack);
  EXPECT_EQ(cv.at(11, 5), kWhite);
  EXPECT_EQ(cv.at(13, 5), kWhite);
  EXPECT_EQ(cv.at(11, 11), kBlack);
  EXPECT_EQ(cv.at(14, 11), kWhite);
  EXPECT_EQ(cv.count_not(kWhite), 1 + 2 + 1 + 1 + 1 + 1 + 3);
  EXPECT_EQ(Canvas::text_width("ab"), 11);  // 2 cells of 6, less the trailing gap
  EXPECT_EQ(Canvas::text_width("ab", 2), 22);
  EXPECT_EQ(Canvas::text_width("é"), 5);  // one code point, one '?'
  EXPECT_EQ(Canvas::text_width(""), 0);
  // Right alignment ends at x.
  Canvas c2(40, 20);
  c2.text(30, 2, "-", kBlack, 1, Align::right);  // '-' row 3 = 1F: x 25..29
  EXPECT_EQ(c2.at(25, 5), kBlack);
  EXPECT_EQ(c2.at(29, 5), kBlack);
  EXPECT_EQ(c2.at(30, 5), kWhite);
  EXPECT_EQ(c2.at(24, 5), kWhite);
}

TEST(Plot, Ticks) {
  EXPECT_EQ(ticks(0, 1, false), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  const auto lin = ticks(0.93, 1.004, false);  // span 0.074 → step 0.01 (0.0148 rounds to 1×10^-2)
  ASSERT_GE(lin.size(), 7u);
  EXPECT_NEAR(lin.front(), 0.93, 1e-12);
  EXPECT_NEAR(lin[1] - lin[0], 0.01, 1e-12);
  EXPECT_EQ(ticks(0.05, 30, true), (std::vector<double>{0.1, 1, 10}));
  // Within one decade: 2× and 5× are added.
  const auto lg = ticks(0.15, 3, true);
  ASSERT_EQ(lg.size(), 4u);
  EXPECT_NEAR(lg[0], 0.2, 1e-12);
  EXPECT_NEAR(lg[1], 0.5, 1e-12);
  EXPECT_NEAR(lg[2], 1, 1e-12);
  EXPECT_NEAR(lg[3], 2, 1e-12);
  EXPECT_EQ(tick_label(0.25, 0.05), "0.25");
  EXPECT_EQ(tick_label(10, 10), "10");
  EXPECT_EQ(tick_label(0.002, 0.002), "0.002");
  EXPECT_EQ(tick_label(-1e-17, 0.2), "0.0");
}

TEST(Plot, PngDecodesToTheCanvas) {
  daug::testing::TempDir tmp;
  const Figure fig = render({fixed_panel({1.0, 3.0}, {0.5, 0.8}, kRed)}, 360, 260);
  fig.canvas.save_png(tmp / "fig.png");
  const at::Tensor img = daug::data::load_rgb(tmp / "fig.png");  // [3,H,W] in [0,1]
  ASSERT_EQ(img.size(1), 260);
  ASSERT_EQ(img.size(2), 360);
  const Frame& f = fig.frames[0];
  const int x = f.px(3.0), y = f.py(0.8);
  EXPECT_NEAR(img[0][y][x].item<float>(), 200 / 255.f, 1e-6);
  EXPECT_NEAR(img[1][y][x].item<float>(), 0, 1e-6);
  EXPECT_NEAR(img[0][0][359].item<float>(), 1, 1e-6);  // the white background
  // Not blank: a good share of the pixels is ink.
  const double non_white = (img.lt(1.0).sum(0) > 0).sum().item<double>();
  EXPECT_GT(non_white, 2000);
}

TEST(Plot, SkipsNonFiniteAndShowsEmptyPanels) {
  Panel p;
  p.x = {"x", true};
  p.y = {"y", false};
  Series s;
  s.x = {std::nan(""), -1.0, 2.0};  // NaN and a non-positive x on a log axis are skipped
  s.y = {0.5, 0.5, 0.7};
  s.labels = {"a", "b", "c"};
  s.color = kRed;
  p.series.push_back(s);
  Panel empty;
  empty.x = {"x", true};
  empty.y = {"y", false};
  const Figure fig = render({p, empty}, 300, 220);
  ASSERT_EQ(fig.frames.size(), 2u);
  EXPECT_EQ(fig.canvas.width(), 600);
  EXPECT_EQ(fig.canvas.at(fig.frames[0].px(2.0), fig.frames[0].py(0.7)), kRed);
  EXPECT_GE(fig.frames[1].left, 300);  // the second panel is to the right of the first
  // Mismatched lengths are a clear error.
  p.series[0].labels = {"only one"};
  daug::testing::expect_error_contains([&] { render({p}); }, {"series", "labels"});
}
