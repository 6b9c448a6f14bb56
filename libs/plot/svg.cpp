// The SVG line-chart writer of svg.h: limits, layout, ticks (shared with the raster plotter), paths with gaps, the
// legend and the note on points that could not be drawn.
#include <daug/plot/plot.h>
#include <daug/plot/svg.h>

#include <daug/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace daug::plot::svg {

namespace {

constexpr double kCharW = 6.2;  // estimated advance of an 11 px sans-serif character (layout only)
constexpr double kTickLen = 5;
constexpr double kLegendRowH = 15;

double text_w(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // UTF-8 code points
  return kCharW * static_cast<double>(n);
}

std::string num(double v) { return fmt::format("{:.2f}", v); }

/// The labels of ticks `t`: as few decimals as the step needs; on a linear axis with lr-sized (step < 0.001) or huge
/// values, one shared power of ten ("1.5e-4", "0.5e-4", "0"), not a mix of "0.00015" and "5e-05"; {:g} on a log axis.
std::vector<std::string> tick_labels(const std::vector<double>& t, bool log) {
  double step = t.size() == 1 ? std::max(std::abs(t[0]), 1e-300) : std::numeric_limits<double>::infinity();
  double top = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    if (i > 0) step = std::min(step, t[i] - t[i - 1]);
    top = std::max(top, std::abs(t[i]));
  }
  if (!std::isfinite(step)) step = 1.0;
  std::vector<std::string> out;
  for (double v : t) {
    if (std::abs(v) < 1e-12 * std::max(1.0, std::abs(step))) v = 0;  // no "-0.00"
    if (log) {
      out.push_back(fmt::format("{:g}", v));
    } else if (step >= 1e-3 && top < 1e6) {
      out.push_back(tick_label(v, step));
    } else if (v == 0) {
      out.push_back("0");
    } else {
      const int e = static_cast<int>(std::floor(std::log10(top)));
      const double scale = std::pow(10.0, e);
      const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step / scale) - 1e-9)));
      out.push_back(fmt::format("{:.{}f}e{}", v / scale, decimals, e));
    }
  }
  return out;
}

std::pair<double, double> data_limits(const std::vector<double>& v, bool log, double margin) {
  if (v.empty()) return log ? std::make_pair(1.0, 10.0) : std::make_pair(0.0, 1.0);
  const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  double lo = *mn, hi = *mx;
  if (log) {
    double a = std::log10(lo), b = std::log10(hi);
    const double pad = b > a ? margin * (b - a) : 0.3;
    return {std::pow(10.0, a - pad), std::pow(10.0, b + pad)};
  }
  const double pad = hi > lo ? margin * (hi - lo) : (lo != 0 ? 0.1 * std::abs(lo) : 1.0);
  if (margin == 0 && hi > lo) return {lo, hi};
  return {lo - pad, hi + pad};
}

}  // namespace

double Frame::px(double x) const { return left + (x - x0) / (x1 - x0) * (right - left); }

double Frame::py(double y) const {
  const double t = ylog ? (std::log10(y) - std::log10(y0)) / (std::log10(y1) - std::log10(y0)) : (y - y0) / (y1 - y0);
  return bottom - t * (bottom - top);
}

std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const char* e = c == '&'    ? "&amp;"
                    : c == '<'  ? "&lt;"
                    : c == '>'  ? "&gt;"
                    : c == '"'  ? "&quot;"
                    : c == '\'' ? "&#39;"
                                : nullptr;
    if (e) out += e;
    else out += c;
  }
  return out;
}

std::vector<double> ema(const std::vector<double>& y, double beta) {
  DAUG_CHECK_AS(ConfigError, beta >= 0 && beta < 1, "svg::ema: beta must be in [0, 1), but got ", beta);
  std::vector<double> out(y.size(), std::numeric_limits<double>::quiet_NaN());
  double s = 0, w = 0;  // w = 1 - beta^n: the weight the zero start took away
  for (size_t i = 0; i < y.size(); ++i) {
    if (!std::isfinite(y[i])) continue;
    s = beta * s + (1 - beta) * y[i];
    w = beta * w + (1 - beta);
    out[i] = s / w;
  }
  return out;
}

double ema_beta_for_span(double n) {
  DAUG_CHECK_AS(ConfigError, n >= 1 && std::isfinite(n), "svg::ema_beta_for_span: the span must be >= 1, but got ", n);
  return 1.0 - 2.0 / (n + 1.0);
}

Result line_chart(const Chart& c) {
  for (const auto& l : c.lines)
    DAUG_CHECK_AS(ConfigError, l.x.size() == l.y.size(), "svg::line_chart: line '", l.name, "' has ", l.x.size(),
                  " x and ", l.y.size(), " y values; they must have the same length");
  // Scale: automatic = log when the finite y are positive and span two decades.
  bool ylog = c.y_scale == Scale::log;
  if (c.y_scale == Scale::automatic) {
    double mn = std::numeric_limits<double>::infinity(), mx = -mn;
    for (const auto& l : c.lines)
      for (size_t i = 0; i < l.y.size(); ++i)
        if (std::isfinite(l.x[i]) && std::isfinite(l.y[i])) mn = std::min(mn, l.y[i]), mx = std::max(mx, l.y[i]);
    ylog = mn > 0 && std::isfinite(mx) && mx / mn >= kAutoLogRatio;
  }
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!ylog || y > 0); };

  Result r;
  Frame& f = r.frame;
  f.ylog = ylog;
  std::vector<double> xs, ys;
  for (const auto& l : c.lines)
    for (size_t i = 0; i < l.x.size(); ++i) {
      if (!usable(l.x[i], l.y[i])) {
        r.skipped += l.counted;
        continue;
      }
      xs.push_back(l.x[i]);
      ys.push_back(l.y[i]);
    }
  std::tie(f.x0, f.x1) = data_limits(xs, false, 0.0);
  std::tie(f.y0, f.y1) = data_limits(ys, ylog, 0.05);
  if (c.x_min) f.x0 = *c.x_min;
  if (c.x_max) f.x1 = *c.x_max;
  if (c.y_min) f.y0 = *c.y_min;
  if (c.y_max) f.y1 = *c.y_max;
  DAUG_CHECK_AS(ConfigError, f.x1 > f.x0 && f.y1 > f.y0 && (!ylog || f.y0 > 0), "svg::line_chart: the limits must be ",
                "increasing (and > 0 on a log axis), but got x [", f.x0, ", ", f.x1, "], y [", f.y0, ", ", f.y1, "]");

  // Legend rows (wrapped) under the title; their height decides the top of the plot area.
  struct Entry {
    std::string name, color;
    double width, opacity, x, y;
  };
  std::vector<Entry> legend;
  const double legend_top = c.title.empty() ? 8 : 24;
  double lx = 8, ly = legend_top;
  for (size_t i = 0; i < c.lines.size(); ++i) {
    const auto& l = c.lines[i];
    if (l.name.empty()) continue;
    const double w = 24 + text_w(l.name) + 12;
    if (lx > 8 && lx + w > c.width - 8) lx = 8, ly += kLegendRowH;
    legend.push_back(
        {l.name, l.color.empty() ? kPalette[i % std::size(kPalette)] : l.color, l.width, l.opacity, lx, ly});
    lx += w;
  }
  auto xt = ticks(f.x0, f.x1, false);
  const auto yt = ticks(f.y0, f.y1, ylog);
  if (c.x_integer) {  // nice steps below 1 become every whole number in range
    if (xt.size() >= 2 && xt[1] - xt[0] < 1) {
      xt.clear();
      for (double v = std::ceil(f.x0); v <= f.x1; ++v) xt.push_back(v);
    }
    xt.erase(std::remove_if(xt.begin(), xt.end(), [](double v) { return v != std::round(v); }), xt.end());
  }
  const auto xl = tick_labels(xt, false), yl = tick_labels(yt, ylog);
  double yt_w = 0;
  for (const auto& l : yl) yt_w = std::max(yt_w, text_w(l));
  f.top = (legend.empty() ? legend_top : ly + kLegendRowH) + 6;
  f.left = 6 + 14 + 4 + yt_w + 4 + kTickLen;
  f.right = c.width - 16;
  f.bottom = c.height - 38;
  DAUG_CHECK_AS(ConfigError, f.right - f.left >= 40 && f.bottom - f.top >= 40, "svg::line_chart: a ", c.width, "x",
                c.height, " chart with ", legend.size(), " legend entries leaves no room for the plot area");

  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"daug-chart\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" role=\"img\" aria-label=\"{2}\" font-family=\"Helvetica,Arial,sans-serif\" font-size=\"11\">\n"
      "<title>{2}</title>\n<rect width=\"{0}\" height=\"{1}\" fill=\"#fff\"/>\n",
      c.width, c.height, escape(c.title));
  if (!c.title.empty())
    s += fmt::format("<text x=\"{}\" y=\"16\" text-anchor=\"middle\" font-size=\"12\" font-weight=\"bold\">{}</text>\n",
                     num(c.width / 2.0), escape(c.title));

  // Grid, ticks and their labels.
  std::string grid, tick_lines, labels;
  for (size_t i = 0; i < xt.size(); ++i) {
    const double v = xt[i];
    const std::string x = num(f.px(v));
    grid += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>", x, num(f.top), num(f.bottom));
    tick_lines +=
        fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>", x, num(f.bottom), num(f.bottom + kTickLen));
    labels += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", x, num(f.bottom + kTickLen + 12),
                          escape(xl[i]));
  }
  for (size_t i = 0; i < yt.size(); ++i) {
    const double v = yt[i];
    const std::string y = num(f.py(v));
    grid += fmt::format("<line x1=\"{1}\" y1=\"{0}\" x2=\"{2}\" y2=\"{0}\"/>", y, num(f.left), num(f.right));
    tick_lines +=
        fmt::format("<line x1=\"{1}\" y1=\"{0}\" x2=\"{2}\" y2=\"{0}\"/>", y, num(f.left - kTickLen), num(f.left));
    labels += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", num(f.left - kTickLen - 3),
                          num(f.py(v) + 4), escape(yl[i]));
  }
  s += "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">" + grid + "</g>\n";
  s += fmt::format(
      "<g class=\"axes\" stroke=\"#000\" stroke-width=\"1\">{0}<line x1=\"{1}\" y1=\"{2}\" x2=\"{1}\" "
      "y2=\"{3}\"/><line x1=\"{1}\" y1=\"{3}\" x2=\"{4}\" y2=\"{3}\"/></g>\n",
      tick_lines, num(f.left), num(f.top), num(f.bottom), num(f.right));
  s += "<g class=\"tick-labels\" fill=\"#222\">" + labels + "</g>\n";
  s += fmt::format("<text class=\"x-title\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                   num((f.left + f.right) / 2), num(c.height - 6.0), escape(c.x_title));
  const std::string ytitle = c.y_title + (ylog ? " (log scale)" : "");
  s += fmt::format(
      "<text class=\"y-title\" transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
      num(6 + 11.0), num((f.top + f.bottom) / 2), escape(ytitle));

  // Lines: runs of drawable points (a gap at each unusable or out-of-limits point), thinned per pixel column.
  s += "<g class=\"lines\" fill=\"none\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n";
  for (size_t li = 0; li < c.lines.size(); ++li) {
    const auto& l = c.lines[li];
    const std::string color = l.color.empty() ? kPalette[li % std::size(kPalette)] : l.color;
    std::vector<std::vector<size_t>> runs(1);
    int64_t drawable = 0;
    for (size_t i = 0; i < l.x.size(); ++i) {
      const bool in = usable(l.x[i], l.y[i]) && l.x[i] >= f.x0 && l.x[i] <= f.x1 && l.y[i] >= f.y0 && l.y[i] <= f.y1;
      if (in) {
        runs.back().push_back(i);
        ++drawable;
      } else if (!runs.back().empty()) {
        runs.emplace_back();
      }
    }
    if (drawable > c.max_points)
      for (auto& run : runs) {  // first, lowest, highest and last point of each pixel column, in order
        std::vector<size_t> kept;
        for (size_t a = 0; a < run.size();) {
          const auto col = [&](size_t i) { return static_cast<int64_t>(std::floor(f.px(l.x[i]))); };
          size_t b = a;
          size_t lo = run[a], hi = run[a];
          while (b < run.size() && col(run[b]) == col(run[a])) {
            if (l.y[run[b]] < l.y[lo]) lo = run[b];
            if (l.y[run[b]] > l.y[hi]) hi = run[b];
            ++b;
          }
          std::vector<size_t> pick = {run[a], lo, hi, run[b - 1]};
          std::sort(pick.begin(), pick.end());
          pick.erase(std::unique(pick.begin(), pick.end()), pick.end());
          kept.insert(kept.end(), pick.begin(), pick.end());
          a = b;
        }
        run = std::move(kept);
      }
    std::string d, dots;
    for (const auto& run : runs) {
      if (run.size() == 1) {
        dots += fmt::format(
            "<circle class=\"point\" data-series=\"{}\" cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\" "
            "fill-opacity=\"{}\"/>\n",
            escape(l.name), num(f.px(l.x[run[0]])), num(f.py(l.y[run[0]])), num(std::max(2.0, l.width + 1)),
            escape(color), l.opacity);
        continue;
      }
      for (size_t k = 0; k < run.size(); ++k)
        d += fmt::format("{}{},{}", k == 0 ? (d.empty() ? "M" : " M") : " L", num(f.px(l.x[run[k]])),
                         num(f.py(l.y[run[k]])));
    }
    if (!d.empty())
      s += fmt::format(
          "<path class=\"series\" data-series=\"{}\" stroke=\"{}\" stroke-width=\"{}\" "
          "stroke-opacity=\"{}\" d=\"{}\"/>\n",
          escape(l.name), escape(color), l.width, l.opacity, d);
    s += dots;
  }
  s += "</g>\n";

  // Legend, notes.
  if (!legend.empty()) {
    s += "<g class=\"legend\">";
    for (const auto& e : legend)
      s += fmt::format(
          "<line x1=\"{0}\" y1=\"{2}\" x2=\"{1}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"{4}\" "
          "stroke-opacity=\"{5}\"/><text x=\"{6}\" y=\"{7}\">{8}</text>",
          num(e.x), num(e.x + 18), num(e.y + 6), escape(e.color), std::max(e.width, 1.5), e.opacity, num(e.x + 24),
          num(e.y + 10), escape(e.name));
    s += "</g>\n";
  }
  if (xs.empty())
    s += fmt::format("<text class=\"note\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#777\">no data</text>\n",
                     num((f.left + f.right) / 2), num((f.top + f.bottom) / 2));
  if (r.skipped > 0)
    s += fmt::format("<text class=\"note\" x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#c0392b\">{}</text>\n",
                     num(f.right - 4), num(f.top + 14),
                     escape(fmt::format("{} point{} not drawn (non-finite{})", r.skipped, r.skipped == 1 ? "" : "s",
                                        ylog ? " or <= 0 on the log axis" : "")));
  s += "</svg>";
  r.svg = std::move(s);
  return r;
}

}  // namespace daug::plot::svg
