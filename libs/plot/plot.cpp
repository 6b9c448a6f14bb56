// The raster plotter of plot.h: canvas primitives, the embedded 5×7 font, ticks and panel layout.
#include <daug/plot/plot.h>

#include <daug/data/image.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace daug::plot {
namespace {

// 5×7 glyphs of printable ASCII (32..126) plus an 8th row for the descenders of g j p q y , ;: one byte per row from
// the top, bit 4 = the leftmost column (the classic HD44780 character-ROM shapes).
constexpr uint8_t kFont[95][8] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // ' '
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00},  // !
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00},  // "
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00},  // #
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00},  // $
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00},  // %
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00},  // &
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00},  // '
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00},  // (
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00},  // )
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00},  // *
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00},  // +
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},  // ,
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00},  // -
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00},  // .
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00},  // /
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00},  // 0
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00},  // 1
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00},  // 2
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00},  // 3
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00},  // 4
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00},  // 5
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00},  // 6
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00},  // 7
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00},  // 8
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00},  // 9
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00},  // :
    {0x00, 0x0C, 0x0C, 0x00, 0x00, 0x0C, 0x04, 0x08},  // ;
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00},  // <
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00},  // =
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00},  // >
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00},  // ?
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00},  // @
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x00},  // A
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00},  // B
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00},  // C
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00},  // D
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00},  // E
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00},  // F
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00},  // G
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00},  // H
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00},  // I
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00},  // J
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00},  // K
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00},  // L
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00},  // M
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00},  // N
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00},  // O
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00},  // P
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00},  // Q
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00},  // R
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00},  // S
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00},  // T
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00},  // U
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00},  // V
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00},  // W
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00},  // X
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x00},  // Y
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00},  // Z
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00},  // [
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00},  // backslash
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00},  // ]
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00},  // ^
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00},  // _
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00},  // `
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00},  // a
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00},  // b
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00},  // c
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00},  // d
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00},  // e
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00},  // f
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // g
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00},  // h
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00},  // i
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C},  // j
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00},  // k
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00},  // l
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00},  // m
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00},  // n
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00},  // o
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10},  // p
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01},  // q
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00},  // r
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0x00},  // s
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00},  // t
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00},  // u
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00},  // v
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00},  // w
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00},  // x
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // y
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00},  // z
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00},  // {
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00},  // |
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00},  // }
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00},  // ~
};

/// The glyph rows of each character to draw: one per byte of ASCII, one '?' per UTF-8 code point beyond it.
std::vector<const uint8_t*> glyphs(const std::string& s) {
  std::vector<const uint8_t*> out;
  for (unsigned char c : s) {
    if ((c & 0xC0) == 0x80) continue;  // a UTF-8 continuation byte: its code point already has its '?'
    if (c < 32 || c > 126) c = '?';
    out.push_back(kFont[c - 32]);
  }
  return out;
}

bool usable(double v, bool log) { return std::isfinite(v) && (!log || v > 0); }
double to_axis(double v, bool log) { return log ? std::log10(v) : v; }

constexpr int kMarginLeft = 74, kMarginRight = 18, kMarginTop = 38, kMarginBottom = 50;
constexpr int kTitleY = 6, kLegendY = 22;
constexpr int kTickLen = 5, kMarkerR = 4;

/// Data limits of an axis from its values (an empty set gives [0, 1], or [1, 10] on a log axis), with a margin so
/// that no marker sits on the frame; fixed limits win.
std::pair<double, double> limits(const Axis& a, const std::vector<double>& values) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values)
    if (usable(v, a.log)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!(lo <= hi)) lo = a.log ? 1 : 0, hi = a.log ? 10 : 1;
  if (a.log) {
    double l0 = std::log10(lo), l1 = std::log10(hi);
    if (l1 - l0 < 1e-9) l0 -= 0.5, l1 += 0.5;
    const double pad = 0.08 * (l1 - l0);
    lo = std::pow(10.0, l0 - pad), hi = std::pow(10.0, l1 + pad);
  } else {
    if (hi - lo < 1e-12) {
      const double d = std::max(std::abs(lo) * 0.1, 0.5);
      lo -= d, hi += d;
    } else {
      const double pad = 0.08 * (hi - lo);
      lo -= pad, hi += pad;
    }
  }
  if (a.min) lo = *a.min;
  if (a.max) hi = *a.max;
  DAUG_CHECK_AS(ConfigError, hi > lo && (!a.log || lo > 0), "plot: axis '", a.title, "' needs min < max",
                a.log ? " and min > 0 (log scale)" : "", ", but got [", lo, ", ", hi, "]");
  return {lo, hi};
}

double nice_step(double span) {
  const double raw = span / 5.0;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

}  // namespace

Canvas::Canvas(int width, int height, Rgb background) : w_(width), h_(height) {
  DAUG_CHECK_AS(ConfigError, width > 0 && height > 0 && width <= 8192 && height <= 8192,
                "plot: a canvas must be 1..8192 pixels on each side, but got ", width, "x", height);
  rgb_.resize(static_cast<size_t>(w_) * static_cast<size_t>(h_) * 3);
  for (size_t i = 0; i < rgb_.size(); i += 3)
    rgb_[i] = background.r, rgb_[i + 1] = background.g, rgb_[i + 2] = background.b;
}

Rgb Canvas::at(int x, int y) const {
  DAUG_CHECK_AS(DataError, x >= 0 && y >= 0 && x < w_ && y < h_, "plot: pixel (", x, ", ", y, ") is outside the ", w_,
                "x", h_, " canvas");
  const size_t i = (static_cast<size_t>(y) * static_cast<size_t>(w_) + static_cast<size_t>(x)) * 3;
  return {rgb_[i], rgb_[i + 1], rgb_[i + 2]};
}

void Canvas::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
  const size_t i = (static_cast<size_t>(y) * static_cast<size_t>(w_) + static_cast<size_t>(x)) * 3;
  rgb_[i] = c.r, rgb_[i + 1] = c.g, rgb_[i + 2] = c.b;
}

void Canvas::fill_rect(int x0, int y0, int x1, int y1, Rgb c) {
  if (x0 > x1) std::swap(x0, x1);
  if (y0 > y1) std::swap(y0, y1);
  for (int y = std::max(y0, 0); y <= std::min(y1, h_ - 1); ++y)
    for (int x = std::max(x0, 0); x <= std::min(x1, w_ - 1); ++x) set(x, y, c);
}

void Canvas::line(int x0, int y0, int x1, int y1, Rgb c, int thickness) {
  const int lo = -(thickness - 1) / 2, hi = thickness / 2;
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (int x = x0, y = y0;;) {
    fill_rect(x + lo, y + lo, x + hi, y + hi, c);
    if (x == x1 && y == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) err += dy, x += sx;
    if (e2 <= dx) err += dx, y += sy;
  }
}

void Canvas::marker(int x, int y, Marker m, int r, Rgb c) {
  for (int dy = -r; dy <= r; ++dy)
    for (int dx = -r; dx <= r; ++dx) {
      bool in = false;
      switch (m) {
        case Marker::circle:
          in = dx * dx + dy * dy <= r * r + r / 2;
          break;
        case Marker::square:
          in = true;
          break;
        case Marker::diamond:
          in = std::abs(dx) + std::abs(dy) <= r;
          break;
        case Marker::triangle:
          in = 2 * std::abs(dx) <= dy + r;
          break;  // apex up, base on row +r
      }
      if (in) set(x + dx, y + dy, c);
    }
}

int Canvas::text_width(const std::string& s, int scale) {
  const auto g = glyphs(s);
  return g.empty() ? 0 : (static_cast<int>(g.size()) * kCellW - (kCellW - kGlyphW)) * scale;
}

int Canvas::text(int x, int y, const std::string& s, Rgb c, int scale, Align align) {
  const int w = text_width(s, scale);
  if (align == Align::center) x -= w / 2;
  if (align == Align::right) x -= w;
  int cx = x;
  for (const uint8_t* g : glyphs(s)) {
    for (int row = 0; row < kGlyphH; ++row)
      for (int col = 0; col < kGlyphW; ++col)
        if (g[row] & (0x10 >> col))
          fill_rect(cx + col * scale, y + row * scale, cx + (col + 1) * scale - 1, y + (row + 1) * scale - 1, c);
    cx += kCellW * scale;
  }
  return w;
}

void Canvas::text_vertical(int x, int y, const std::string& s, Rgb c, int scale) {
  // Rotated 90° counter-clockwise: the string runs upwards from y + width/2; a glyph's top row is at the left.
  int cy = y + text_width(s, scale) / 2;
  for (const uint8_t* g : glyphs(s)) {
    for (int row = 0; row < kGlyphH; ++row)
      for (int col = 0; col < kGlyphW; ++col)
        if (g[row] & (0x10 >> col)) {
          const int px = x + row * scale, py = cy - (col + 1) * scale;
          fill_rect(px, py, px + scale - 1, py + scale - 1, c);
        }
    cy -= kCellW * scale;
  }
}

int64_t Canvas::count_not(Rgb background) const {
  int64_t n = 0;
  for (size_t i = 0; i < rgb_.size(); i += 3)
    n += rgb_[i] != background.r || rgb_[i + 1] != background.g || rgb_[i + 2] != background.b;
  return n;
}

void Canvas::save_png(const std::filesystem::path& path) const {
  // [H,W,3] uint8 → [3,H,W] as save_png takes it (a copy: from_blob does not own the bytes).
  at::Tensor hwc = at::from_blob(const_cast<uint8_t*>(rgb_.data()), {h_, w_, 3}, at::TensorOptions().dtype(at::kByte));
  data::save_png(path, hwc.permute({2, 0, 1}).contiguous());
}

int Frame::px(double x) const {
  const double t = (to_axis(x, xlog) - to_axis(x0, xlog)) / (to_axis(x1, xlog) - to_axis(x0, xlog));
  return left + static_cast<int>(std::lround(t * (right - left)));
}

int Frame::py(double y) const {
  const double t = (to_axis(y, ylog) - to_axis(y0, ylog)) / (to_axis(y1, ylog) - to_axis(y0, ylog));
  return bottom - static_cast<int>(std::lround(t * (bottom - top)));
}

std::vector<double> ticks(double lo, double hi, bool log) {
  std::vector<double> out;
  if (!(hi > lo)) return out;
  if (!log) {
    const double step = nice_step(hi - lo);
    for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step; k += 1) out.push_back(k * step);
    return out;
  }
  // Powers of ten first; multiples 2 and 5, then 1..9, while fewer than 3 ticks fall in range.
  const int e0 = static_cast<int>(std::floor(std::log10(lo))), e1 = static_cast<int>(std::ceil(std::log10(hi)));
  for (const std::vector<int>& mults : {std::vector<int>{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}}) {
    out.clear();
    for (int e = e0; e <= e1; ++e)
      for (int m : mults) {
        const double v = m * std::pow(10.0, e);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push_back(v);
      }
    if (out.size() >= 3) break;
  }
  return out;
}

std::string tick_label(double v, double step) {
  if (std::abs(v) < 1e-12 * std::max(1.0, std::abs(step))) v = 0;  // no "-0.00"
  const int decimals = step >= 1 ? 0 : std::min(12, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return fmt::format("{:.{}f}", v, decimals);
}

Figure render(const std::vector<Panel>& panels, int panel_w, int panel_h) {
  DAUG_CHECK_AS(ConfigError, !panels.empty(), "plot: render needs at least one panel");
  DAUG_CHECK_AS(ConfigError, panel_w >= kMarginLeft + kMarginRight + 40 && panel_h >= kMarginTop + kMarginBottom + 40,
                "plot: a panel must be at least ", kMarginLeft + kMarginRight + 40, "x",
                kMarginTop + kMarginBottom + 40, " pixels, but got ", panel_w, "x", panel_h);
  Figure fig{Canvas(panel_w * static_cast<int>(panels.size()), panel_h), {}};
  Canvas& cv = fig.canvas;
  for (size_t p = 0; p < panels.size(); ++p) {
    const Panel& pn = panels[p];
    std::vector<double> xs, ys;
    for (const auto& s : pn.series) {
      DAUG_CHECK_AS(ConfigError, s.x.size() == s.y.size() && (s.labels.empty() || s.labels.size() == s.x.size()),
                    "plot: series '", s.name, "' has ", s.x.size(), " x, ", s.y.size(), " y values and ",
                    s.labels.size(), " labels; x and y (and labels, if any) must have the same length");
      for (size_t i = 0; i < s.x.size(); ++i)
        if (usable(s.x[i], pn.x.log) && usable(s.y[i], pn.y.log)) xs.push_back(s.x[i]), ys.push_back(s.y[i]);
    }
    Frame f;
    const int ox = panel_w * static_cast<int>(p);
    f.left = ox + kMarginLeft, f.right = ox + panel_w - kMarginRight;
    f.top = kMarginTop, f.bottom = panel_h - kMarginBottom;
    f.xlog = pn.x.log, f.ylog = pn.y.log;
    std::tie(f.x0, f.x1) = limits(pn.x, xs);
    std::tie(f.y0, f.y1) = limits(pn.y, ys);

    // Grid and ticks with labels.
    const auto xt = ticks(f.x0, f.x1, f.xlog), yt = ticks(f.y0, f.y1, f.ylog);
    auto step_of = [](const std::vector<double>& t, double v) {  // the label precision a tick needs
      double step = std::abs(v) > 0 ? std::abs(v) : 1;
      for (size_t i = 1; i < t.size(); ++i) step = std::min(step, t[i] - t[i - 1]);
      return step;
    };
    for (double v : xt) {
      const int x = f.px(v);
      cv.line(x, f.top, x, f.bottom - 1, kGrid);
      cv.line(x, f.bottom, x, f.bottom + kTickLen, kBlack);
      cv.text(x, f.bottom + kTickLen + 3, tick_label(v, f.xlog ? std::abs(v) : step_of(xt, v)), kBlack, 1,
              Align::center);
    }
    int widest = 0;
    for (double v : yt) {
      const int y = f.py(v);
      cv.line(f.left + 1, y, f.right, y, kGrid);
      cv.line(f.left - kTickLen, y, f.left, y, kBlack);
      const std::string lab = tick_label(v, f.ylog ? std::abs(v) : step_of(yt, v));
      widest = std::max(widest, Canvas::text_width(lab));
      cv.text(f.left - kTickLen - 3, y - kGlyphH / 2, lab, kBlack, 1, Align::right);
    }
    // Axes (left and bottom edges of the plot area) and titles.
    cv.line(f.left, f.top, f.left, f.bottom, kBlack);
    cv.line(f.left, f.bottom, f.right, f.bottom, kBlack);
    const std::string xt_title = pn.x.title + (pn.x.log ? " (log scale)" : "");
    cv.text((f.left + f.right) / 2, f.bottom + kTickLen + 3 + kCellH + 8, xt_title, kBlack, 1, Align::center);
    cv.text_vertical(std::max(ox + 2, f.left - kTickLen - 3 - widest - 6 - kCellH), (f.top + f.bottom) / 2,
                     pn.y.title + (pn.y.log ? " (log scale)" : ""), kBlack);
    cv.text(ox + panel_w / 2, kTitleY, pn.title, kBlack, 1, Align::center);
    if (xs.empty()) cv.text((f.left + f.right) / 2, (f.top + f.bottom) / 2, "no data", kBlack, 1, Align::center);

    // Series: lines first, then markers and labels on top. Points outside fixed limits are not drawn.
    struct Entry {
      std::string name;
      Marker marker;
      Rgb color;
    };
    std::vector<Entry> legend;
    for (size_t si = 0; si < pn.series.size(); ++si) {
      const Series& s = pn.series[si];
      const Rgb c = s.color.value_or(kPalette[si % std::size(kPalette)]);
      auto inside = [&](double x, double y) {
        return usable(x, f.xlog) && usable(y, f.ylog) && x >= f.x0 && x <= f.x1 && y >= f.y0 && y <= f.y1;
      };
      if (s.connect) {
        int px0 = 0, py0 = 0;
        bool have = false;
        for (size_t i = 0; i < s.x.size(); ++i) {
          if (!inside(s.x[i], s.y[i])) continue;
          const int px1 = f.px(s.x[i]), py1 = f.py(s.y[i]);
          if (have) cv.line(px0, py0, px1, py1, c, 2);
          px0 = px1, py0 = py1, have = true;
        }
      }
      for (size_t i = 0; i < s.x.size(); ++i) {
        if (!inside(s.x[i], s.y[i])) continue;
        const int x = f.px(s.x[i]), y = f.py(s.y[i]);
        cv.marker(x, y, s.marker, kMarkerR, c);
        if (!s.labels.empty() && !s.labels[i].empty()) {
          // Right of the marker, or left of it when it would run past the plot area.
          const int w = Canvas::text_width(s.labels[i]);
          const bool left = x + kMarkerR + 3 + w > f.right;
          cv.text(left ? x - kMarkerR - 3 : x + kMarkerR + 3, y - kCellH - 1, s.labels[i], kBlack, 1,
                  left ? Align::right : Align::left);
        }
      }
      if (!s.name.empty()) legend.push_back({s.name, s.marker, c});
    }
    // Legend: in the top margin under the title, right-aligned, so it never covers a point.
    int lx = f.right;
    for (auto it = legend.rbegin(); it != legend.rend(); ++it) {
      lx -= Canvas::text_width(it->name);
      cv.text(lx, kLegendY, it->name, kBlack);
      cv.marker(lx - 8, kLegendY + kGlyphH / 2 - 1, it->marker, kMarkerR - 1, it->color);
      lx -= 8 + kMarkerR + 14;
    }
    fig.frames.push_back(f);
  }
  return fig;
}

}  // namespace daug::plot
