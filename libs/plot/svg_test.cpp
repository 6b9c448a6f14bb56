// The SVG line-chart writer against independent facts: the output parses as XML (Python's xml.etree, not our own
// code), points land where linear interpolation between the drawn axes puts them (linear and log10 y), the EMA
// matches a hand-computed sequence, and non-finite values make gaps that are counted, never NaN coordinates.
#include <daug/plot/svg.h>

#include <daug/error.h>

#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <regex>

namespace svg = daug::plot::svg;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// Parses `markup` with Python's xml.etree; returns "ok <paths> <circles>" or the parser's error.
std::string parse_with_python(const std::string& markup) {
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "chart.svg", markup);
  const std::string cmd =
      "python3 -c \"import sys, xml.etree.ElementTree as E\n"
      "r = E.parse(sys.argv[1]).getroot(); ns = '{http://www.w3.org/2000/svg}'\n"
      "assert r.tag == ns + 'svg', r.tag\n"
      "print('ok', len(list(r.iter(ns + 'path'))), len(list(r.iter(ns + 'circle'))))\" '" +
      (tmp / "chart.svg").string() + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  const int rc = pclose(p);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return rc == 0 ? out : "python3 failed (" + std::to_string(rc) + "): " + out;
}

/// The plot area's edges as drawn: the y axis line (left, top..bottom) and the x axis line (left..right, bottom).
struct Edges {
  double left, top, right, bottom;
};
Edges drawn_axes(const std::string& s) {
  static const std::regex re(
      R"re(<line x1="([-\d.]+)" y1="([-\d.]+)" x2="([-\d.]+)" y2="([-\d.]+)"/><line x1="([-\d.]+)" )re"
      R"re(y1="([-\d.]+)" x2="([-\d.]+)" y2="([-\d.]+)"/></g>)re");
  std::smatch m;
  const auto g = s.find("<g class=\"axes\"");
  EXPECT_NE(g, std::string::npos) << s;
  const std::string axes = s.substr(g);
  EXPECT_TRUE(std::regex_search(axes, m, re)) << axes;
  EXPECT_EQ(m[1].str(), m[3].str());  // vertical
  EXPECT_EQ(m[6].str(), m[8].str());  // horizontal
  return {std::stod(m[1]), std::stod(m[2]), std::stod(m[7]), std::stod(m[4])};
}

/// The points of the path with data-series `name`, as (x, y) pairs; "M" starts a new run (index in `runs`).
std::vector<std::vector<std::pair<double, double>>> path_runs(const std::string& s, const std::string& name) {
  // string search and strtod, not std::regex: libstdc++'s regex recurses per character and a long "d" overflows.
  std::vector<std::vector<std::pair<double, double>>> runs;
  const auto at = s.find("<path class=\"series\" data-series=\"" + name + "\"");
  if (at == std::string::npos) return runs;
  const auto d0 = s.find(" d=\"", at) + 4, d1 = s.find('"', d0);
  const std::string d = s.substr(d0, d1 - d0);
  const char* p = d.c_str();
  while (*p) {
    while (*p == ' ') ++p;
    if (*p == 'M') runs.emplace_back();
    EXPECT_TRUE(*p == 'M' || *p == 'L') << d;
    if (*p != 'M' && *p != 'L') break;
    char* end = nullptr;
    const double x = std::strtod(p + 1, &end);
    EXPECT_EQ(*end, ',') << d;
    const double y = std::strtod(end + 1, &end);
    runs.back().emplace_back(x, y);
    p = end;
  }
  return runs;
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(Svg, WellFormedXmlForTextNeedingEscapesGapsAndEmptyCharts) {
  svg::Chart c;
  c.title = "loss & <lr> \"quoted\" 'single'";
  c.x_title = "step";
  c.y_title = "µ loss";  // UTF-8
  c.lines.push_back({"a<b & \"c\"", {0, 1, 2, 3}, {1, kNaN, 3, 4}, "", 1.0, 0.35});
  c.lines.push_back({"it's", {0, 1, 2, 3}, {2, 2, kInf, 1}});
  const auto r = svg::line_chart(c);
  EXPECT_EQ(parse_with_python(r.svg), "ok 2 2") << r.svg;  // two paths; one isolated point each (circles)
  EXPECT_NE(r.svg.find("a&lt;b &amp; &quot;c&quot;"), std::string::npos);
  EXPECT_NE(r.svg.find("<title>loss &amp; &lt;lr&gt; &quot;quoted&quot; &#39;single&#39;</title>"), std::string::npos);
  EXPECT_EQ(r.svg.find("nan"), std::string::npos);
  EXPECT_EQ(r.svg.find("inf"), std::string::npos);

  svg::Chart empty;  // no lines at all, and a line with no finite point
  EXPECT_EQ(parse_with_python(svg::line_chart(empty).svg), "ok 0 0");
  empty.lines.push_back({"none", {0, 1}, {kNaN, kNaN}});
  const auto e = svg::line_chart(empty);
  EXPECT_EQ(parse_with_python(e.svg), "ok 0 0");
  EXPECT_NE(e.svg.find(">no data</text>"), std::string::npos);
  EXPECT_EQ(e.skipped, 2);
}

TEST(Svg, PointsLandBetweenTheDrawnAxesLinearY) {
  svg::Chart c;
  c.x_min = 0, c.x_max = 10, c.y_min = 0, c.y_max = 1;
  c.lines.push_back({"a", {0, 5, 10, 2.5}, {0, 0.5, 1, 0.75}});
  const auto r = svg::line_chart(c);
  const Edges e = drawn_axes(r.svg);
  EXPECT_NEAR(r.frame.left, e.left, 0.006);
  EXPECT_NEAR(r.frame.bottom, e.bottom, 0.006);
  const auto runs = path_runs(r.svg, "a");
  ASSERT_EQ(runs.size(), 1u) << r.svg;
  ASSERT_EQ(runs[0].size(), 4u);
  const double w = e.right - e.left, h = e.bottom - e.top;
  const std::pair<double, double> want[] = {
      {e.left, e.bottom}, {e.left + w / 2, e.bottom - h / 2}, {e.right, e.top}, {e.left + w / 4, e.bottom - 0.75 * h}};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(runs[0][i].first, want[i].first, 0.011) << i;
    EXPECT_NEAR(runs[0][i].second, want[i].second, 0.011) << i;
  }
}

TEST(Svg, PointsLandBetweenTheDrawnAxesLogY) {
  svg::Chart c;
  c.y_scale = svg::Scale::log;
  c.x_min = 0, c.x_max = 4, c.y_min = 0.01, c.y_max = 100;
  // log10: -2 .. 2, so 1 is the middle, 0.1 a quarter up, 100 the top.
  c.lines.push_back({"a", {0, 1, 2, 4}, {0.01, 0.1, 1, 100}});
  const auto r = svg::line_chart(c);
  EXPECT_TRUE(r.frame.ylog);
  const Edges e = drawn_axes(r.svg);
  const auto runs = path_runs(r.svg, "a");
  ASSERT_EQ(runs.size(), 1u);
  ASSERT_EQ(runs[0].size(), 4u);
  const double h = e.bottom - e.top, w = e.right - e.left;
  EXPECT_NEAR(runs[0][0].second, e.bottom, 0.011);
  EXPECT_NEAR(runs[0][1].second, e.bottom - h / 4, 0.011);
  EXPECT_NEAR(runs[0][2].second, e.bottom - h / 2, 0.011);
  EXPECT_NEAR(runs[0][3].second, e.top, 0.011);
  EXPECT_NEAR(runs[0][1].first, e.left + w / 4, 0.011);
  EXPECT_NE(r.svg.find("(log scale)"), std::string::npos);
  // Tick labels at the powers of ten.
  for (const char* t : {">0.01<", ">0.1<", ">1<", ">10<", ">100<"}) EXPECT_NE(r.svg.find(t), std::string::npos) << t;
}

TEST(Svg, AutomaticScaleIsLogOnlyForPositiveDataSpanningTwoDecades) {
  auto ylog = [](std::vector<double> y) {
    svg::Chart c;
    c.y_scale = svg::Scale::automatic;
    std::vector<double> x(y.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i);
    c.lines.push_back({"a", x, y});
    return svg::line_chart(c).frame.ylog;
  };
  EXPECT_TRUE(ylog({10, 1, 0.1}));
  EXPECT_TRUE(ylog({10, kNaN, 0.1, kInf}));  // non-finite values do not decide
  EXPECT_FALSE(ylog({10, 1, 0.11}));         // less than two decades
  EXPECT_FALSE(ylog({10, 0, 0.001}));        // a zero cannot go on a log axis
  EXPECT_FALSE(ylog({}));
}

TEST(Svg, EmaMatchesAHandComputedSequence) {
  // beta 0.5: s = 0.5, w = 0.5 -> 1; s = 1.25, w = 0.75 -> 5/3; NaN passes; s = 2.625, w = 0.875 -> 3.
  const auto s = svg::ema({1, 2, kNaN, 4}, 0.5);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_DOUBLE_EQ(s[0], 1.0);
  EXPECT_DOUBLE_EQ(s[1], 5.0 / 3.0);
  EXPECT_TRUE(std::isnan(s[2]));
  EXPECT_DOUBLE_EQ(s[3], 3.0);
  const auto t = svg::ema({kInf, 2, 4}, 0.5);  // a non-finite start: the first finite value starts the average
  EXPECT_TRUE(std::isnan(t[0]));
  EXPECT_DOUBLE_EQ(t[1], 2.0);
  EXPECT_DOUBLE_EQ(t[2], (0.25 * 2 + 0.5 * 4) / 0.75);
  EXPECT_EQ(svg::ema({3, 1, 2}, 0.0), (std::vector<double>{3, 1, 2}));
  EXPECT_DOUBLE_EQ(svg::ema_beta_for_span(1), 0.0);
  EXPECT_DOUBLE_EQ(svg::ema_beta_for_span(3), 0.5);
  EXPECT_DOUBLE_EQ(svg::ema_beta_for_span(19), 0.9);
  EXPECT_THROW(svg::ema({1}, 1.0), daug::ConfigError);
  EXPECT_THROW(svg::ema_beta_for_span(0.5), daug::ConfigError);
}

TEST(Svg, NonFiniteValuesBreakTheLineAndAreCounted) {
  svg::Chart c;
  c.lines.push_back({"a", {0, 1, 2, 3, 4, 5}, {1, kNaN, 3, kInf, 5, 6}});
  c.lines.push_back({"a EMA", {0, 1, 2, 3, 4, 5}, {1, kNaN, 3, kNaN, 5, 6}, "", 2, 1, /*counted=*/false});
  const auto r = svg::line_chart(c);
  EXPECT_EQ(r.skipped, 2);  // the uncounted copy's gaps are not counted again
  EXPECT_NE(r.svg.find(">2 points not drawn (non-finite)</text>"), std::string::npos) << r.svg;
  // Limits from the finite values only (1..6 with a 5% margin); x exactly 0..5.
  EXPECT_DOUBLE_EQ(r.frame.y0, 1 - 0.25);
  EXPECT_DOUBLE_EQ(r.frame.y1, 6 + 0.25);
  EXPECT_DOUBLE_EQ(r.frame.x0, 0);
  EXPECT_DOUBLE_EQ(r.frame.x1, 5);
  // Points 0 and 2 have no drawable neighbour: circles; 4-5 is the only path run.
  const auto runs = path_runs(r.svg, "a");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].size(), 2u);
  EXPECT_EQ(count(r.svg, "<circle class=\"point\" data-series=\"a\""), 2);
  EXPECT_EQ(parse_with_python(r.svg), "ok 2 4");

  svg::Chart one;  // a one-row losses.csv: a single visible dot, finite limits
  one.lines.push_back({"loss", {7}, {0.5}});
  const auto o = svg::line_chart(one);
  EXPECT_EQ(count(o.svg, "<circle class=\"point\""), 1);
  EXPECT_LT(o.frame.x0, 7);
  EXPECT_GT(o.frame.x1, 7);
  EXPECT_LT(o.frame.y0, 0.5);
  EXPECT_GT(o.frame.y1, 0.5);
}

TEST(Svg, LongLinesAreThinnedPerPixelColumnKeepingTheExtremes) {
  svg::Chart c;
  const int n = 100000;
  std::vector<double> x(n), y(n);
  for (int i = 0; i < n; ++i) x[i] = i, y[i] = 1 + 0.1 * std::sin(i * 0.01);
  y[54321] = 10;  // one spike, and one dip
  y[777] = -5;
  c.lines.push_back({"a", x, y});
  const auto r = svg::line_chart(c);
  const auto runs = path_runs(r.svg, "a");
  ASSERT_EQ(runs.size(), 1u);
  const double columns = r.frame.right - r.frame.left + 1;
  EXPECT_LE(runs[0].size(), 4 * columns);
  EXPECT_GT(runs[0].size(), columns);
  double top = 1e9, bottom = -1e9;
  for (const auto& p : runs[0]) top = std::min(top, p.second), bottom = std::max(bottom, p.second);
  EXPECT_NEAR(top, r.frame.py(10), 0.011);
  EXPECT_NEAR(bottom, r.frame.py(-5), 0.011);
  EXPECT_NEAR(runs[0].front().first, r.frame.left, 0.011);
  EXPECT_NEAR(runs[0].back().first, r.frame.right, 0.011);
  EXPECT_LT(r.svg.size(), 200000u);
}

TEST(Svg, LegendHasOneEntryPerNamedLine) {
  svg::Chart c;
  c.lines.push_back({"loss", {0, 1}, {1, 2}});
  c.lines.push_back({"", {0, 1}, {2, 1}});
  c.lines.push_back({"clip", {0, 1}, {2, 3}});
  const auto r = svg::line_chart(c);
  const auto g = r.svg.find("<g class=\"legend\">");
  ASSERT_NE(g, std::string::npos);
  const std::string legend = r.svg.substr(g, r.svg.find("</g>", g) - g);
  EXPECT_EQ(count(legend, "<text"), 2);
  EXPECT_NE(legend.find(">loss</text>"), std::string::npos);
  EXPECT_NE(legend.find(">clip</text>"), std::string::npos);
  EXPECT_NE(legend.find(std::string("stroke=\"") + svg::kPalette[2] + "\""), std::string::npos);  // palette by index
}

TEST(Svg, MismatchedLengthsAndBadLimitsAreConfigErrors) {
  svg::Chart c;
  c.lines.push_back({"a", {0, 1}, {1}});
  EXPECT_THROW(svg::line_chart(c), daug::ConfigError);
  svg::Chart d;
  d.y_scale = svg::Scale::log;
  d.y_min = 0;
  d.y_max = 1;
  EXPECT_THROW(svg::line_chart(d), daug::ConfigError);
  svg::Chart tiny;
  tiny.width = 60;
  EXPECT_THROW(svg::line_chart(tiny), daug::ConfigError);
}

TEST(Svg, TickLabelsOfLearningRatesShareOnePowerOfTen) {
  svg::Chart c;
  c.x_min = 0, c.x_max = 100, c.y_min = 0, c.y_max = 2e-4;
  c.lines.push_back({"lr", {0, 100}, {0, 2e-4}});
  const auto r = svg::line_chart(c);
  const auto g = r.svg.find("<g class=\"tick-labels\"");
  const std::string labels = r.svg.substr(g, r.svg.find("</g>", g) - g);
  for (const char* t : {">0<", ">0.5e-4<", ">1.0e-4<", ">1.5e-4<", ">2.0e-4<", ">20<", ">100<"})
    EXPECT_NE(labels.find(t), std::string::npos) << t << " in " << labels;
  EXPECT_EQ(labels.find("0.00015"), std::string::npos);
}

TEST(Svg, IntegerXTicksOnAShortRun) {
  svg::Chart c;
  c.x_integer = true;
  c.lines.push_back({"loss", {0, 1}, {1, 0.5}});  // two steps: ticks 0 and 1 only, not 0.2, 0.4, ...
  const auto r = svg::line_chart(c);
  const auto g = r.svg.find("<g class=\"tick-labels\"");
  const std::string labels = r.svg.substr(g, r.svg.find("</g>", g) - g);
  EXPECT_NE(labels.find("text-anchor=\"middle\">0</text>"), std::string::npos) << labels;
  EXPECT_NE(labels.find("text-anchor=\"middle\">1</text>"), std::string::npos) << labels;
  EXPECT_EQ(labels.find("text-anchor=\"middle\">0.2</text>"), std::string::npos) << labels;
  EXPECT_EQ(count(labels, "text-anchor=\"middle\""), 2);
}
