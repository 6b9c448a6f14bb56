#pragma once
/// An SVG line-chart writer for figures inlined in HTML pages (the report's training curves): crisp at any zoom, text
/// as text, no files. Axes with "nice" ticks (plot.h's ticks()), linear or log10 y, tick labels, axis titles, a
/// legend, lines that break at non-finite values, and a note counting the points that could not be drawn.
/// The output is a standalone, well-formed `<svg>` element (XML-escaped text, no ids, no external references), so
/// several charts can sit in one page.
///
/// Example:
///   daug::plot::svg::Chart c;
///   c.title = "loss";
///   c.x_title = "step";
///   c.y_title = "loss";
///   c.y_scale = daug::plot::svg::Scale::automatic;  // log10 when the data span two decades
///   c.lines.push_back({"loss", steps, loss, "#1f77b4", 1.0, 0.35});
///   c.lines.push_back({"loss EMA", steps, daug::plot::svg::ema(loss, 0.9), "#1f77b4", 2.0, 1.0});
///   std::string markup = daug::plot::svg::line_chart(c).svg;
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace daug::plot::svg {

struct Line {
  std::string name;          ///< legend entry and the path's data-series attribute ("" = no legend entry)
  std::vector<double> x, y;  ///< same length; a point with a non-finite x or y (or y <= 0 on a log axis) is a gap
  std::string color;         ///< CSS colour; "" = kPalette[index of the line]
  double width = 1.5;        ///< stroke width (px)
  double opacity = 1.0;      ///< stroke opacity
  /// Whether its undrawable points count in Result::skipped and the chart's note (false for a derived line, e.g. a
  /// smoothed copy, whose gaps repeat those of the line it was computed from).
  bool counted = true;
};

/// automatic: log10 when every finite y is > 0 and max/min >= kAutoLogRatio (the data span two decades).
enum class Scale { linear, log, automatic };
inline constexpr double kAutoLogRatio = 100.0;

/// Series colours (matplotlib's tab10), used in order when a Line leaves `color` empty.
inline constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

struct Chart {
  std::string title, x_title, y_title;
  Scale y_scale = Scale::linear;
  std::optional<double> x_min, x_max, y_min, y_max;  ///< fixed limits; otherwise from the data (y with a 5% margin)
  bool x_integer = false;         ///< x ticks only at whole numbers (e.g. steps: no "0.5" tick on a 2-step run)
  int width = 480, height = 300;  ///< pixels (also the viewBox)
  /// A line with more drawable points than this is thinned to the first, lowest, highest and last point of each
  /// pixel column of the plot area, which looks the same and keeps a 100k-step run's page small.
  int64_t max_points = 4000;
  std::vector<Line> lines;
};

/// Where data coordinates land in the SVG's user space (as written: "%.2f").
struct Frame {
  double left = 0, top = 0, right = 0, bottom = 0;  ///< the plot area: axes on its left and bottom edges
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;            ///< data limits of the plot area
  bool ylog = false;
  double px(double x) const;
  double py(double y) const;
};

struct Result {
  std::string svg;
  Frame frame;
  int64_t skipped = 0;  ///< points not drawn: non-finite x or y, or y <= 0 on a log axis (said in the chart)
};

/// Draws `c` as one `<svg class="daug-chart">`. Each line is a `<path class="series" data-series="NAME">` ("M x,y
/// L x,y ..."; a gap starts a new "M"), and a point with no drawable neighbour is a `<circle class="point">`. A chart
/// with no drawable point has its axes and the text "no data". Throws ConfigError when a line's x and y differ in
/// length or the size leaves no plot area.
Result line_chart(const Chart& c);

/// Exponential moving average as TensorBoard smooths scalars, debiased so the start is not pulled toward 0:
/// s_t = beta * s_{t-1} + (1 - beta) * y_t (s_{-1} = 0), out_t = s_t / (1 - beta^(n_t)) with n_t the number of
/// finite values so far. A non-finite y_t gives a NaN output and leaves the state unchanged. beta in [0, 1).
std::vector<double> ema(const std::vector<double>& y, double beta);
/// The beta of an EMA over a span of `n` points (pandas' convention: alpha = 2 / (n + 1)); span 1 = no smoothing.
double ema_beta_for_span(double n);

/// XML-escapes text and attribute values (& < > " ').
std::string escape(const std::string& s);

}  // namespace daug::plot::svg
