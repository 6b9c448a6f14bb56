#pragma once
/// A small self-contained raster plotter for the figures commands write next to their tables (e.g.
/// `daug compare-heatmaps`' tradeoff.png): an RGB canvas with lines, markers and text in an embedded 5×7 bitmap font,
/// and scatter/line panels with linear or log10 axes, ticks, numeric tick labels, axis titles and point labels.
/// No Python, no gnuplot, no fonts on disk: the same bytes on every machine. Saved as PNG through libs/data.
///
/// Example:
///   daug::plot::Panel p;
///   p.title = "Trade-off";
///   p.x = {"seconds per image", /*log=*/true};
///   p.y = {"mean Pearson r", false};
///   p.series.push_back({"ddim", {0.1, 0.5, 2.0}, {0.8, 0.95, 1.0}, {"ddim10", "ddim50", "ddim250"}});
///   daug::plot::Figure fig = daug::plot::render({p}, 640, 420);
///   fig.canvas.save_png("tradeoff.png");
///   int px = fig.frames[0].px(0.5);   // where x = 0.5 lands (tests check markers there)
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace daug::plot {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
  bool operator!=(const Rgb& o) const { return !(*this == o); }
};

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};
inline constexpr Rgb kGrid{225, 225, 225};
/// Distinct series colours (matplotlib's tab10 first four), used in order when a Series leaves `color` unset.
inline constexpr Rgb kPalette[] = {{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {148, 103, 189}};

enum class Marker { circle, square, triangle, diamond };

/// The embedded font: 5×7 glyphs (and a descender row: 5×8) in a 6×10 cell (printable ASCII; anything else,
/// including each UTF-8 code point outside ASCII, is drawn as '?'). `scale` multiplies every pixel.
inline constexpr int kGlyphW = 5, kGlyphH = 8, kCellW = 6, kCellH = 10;

enum class Align { left, center, right };

/// An RGB raster, (0,0) at the top left. Drawing outside the canvas is clipped, never an error.
class Canvas {
 public:
  Canvas(int width, int height, Rgb background = kWhite);
  int width() const { return w_; }
  int height() const { return h_; }
  Rgb at(int x, int y) const;  ///< DataError outside the canvas
  void set(int x, int y, Rgb c);
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c);  ///< inclusive corners, any order
  /// A straight line (Bresenham) `thickness` pixels wide (a square brush).
  void line(int x0, int y0, int x1, int y1, Rgb c, int thickness = 1);
  /// A filled marker of half-size `r` pixels centred on (x, y).
  void marker(int x, int y, Marker m, int r, Rgb c);
  /// Text with its top edge at y; `align` places x at its left end, centre or right end. Returns its width.
  int text(int x, int y, const std::string& s, Rgb c, int scale = 1, Align align = Align::left);
  /// Text rotated 90° counter-clockwise (read bottom to top), centred vertically on y, left edge at x.
  void text_vertical(int x, int y, const std::string& s, Rgb c, int scale = 1);
  static int text_width(const std::string& s, int scale = 1);
  /// Pixels that differ from `background`.
  int64_t count_not(Rgb background) const;
  /// 8-bit RGB PNG, written atomically (libs/data save_png).
  void save_png(const std::filesystem::path& path) const;

 private:
  int w_, h_;
  std::vector<uint8_t> rgb_;  // row-major, 3 bytes a pixel
};

struct Axis {
  std::string title;
  bool log = false;                ///< log10 scale (every value must be > 0)
  std::optional<double> min, max;  ///< fixed limits; otherwise from the data with a margin
};

struct Series {
  std::string name;                 ///< legend entry ("" = none)
  std::vector<double> x, y;         ///< points; a non-finite value (or <= 0 on a log axis) is skipped
  std::vector<std::string> labels;  ///< optional text beside each point (empty, or one per point)
  std::optional<Rgb> color;         ///< default kPalette[index]
  Marker marker = Marker::circle;
  bool connect = true;  ///< a line through the points in the given order
};

struct Panel {
  std::string title;
  Axis x, y;
  std::vector<Series> series;
};

/// Where a panel's data coordinates land in the canvas (pixel centres), as drawn.
struct Frame {
  int left = 0, top = 0, right = 0, bottom = 0;  ///< the plot area: axes on its left and bottom edges
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;         ///< data limits of the plot area
  bool xlog = false, ylog = false;
  int px(double x) const;
  int py(double y) const;
};

/// Tick positions on [lo, hi]: linear "nice" steps (1, 2 or 5 × 10^k, about 4-8 ticks), or on a log axis the powers
/// of ten, with 2× and 5× (or every integer multiple) added when the range covers too few of them.
std::vector<double> ticks(double lo, double hi, bool log);
/// A tick label: as few decimals as the tick step needs ("0.25", "10", "0.002").
std::string tick_label(double v, double step);

struct Figure {
  Canvas canvas;
  std::vector<Frame> frames;  ///< one per panel, in order
};

/// Draws the panels side by side, each panel_w × panel_h pixels: grid, axes, ticks and their labels, axis titles,
/// the series (lines, markers, point labels), the title, and a legend of the named series in the top margin. A panel with no
/// finite point is drawn with its axes and the note "no data".
Figure render(const std::vector<Panel>& panels, int panel_w = 560, int panel_h = 400);

}  // namespace daug::plot
