#include "curves.h"

#include <daug/html/html.h>

#include <daug/data/csv.h>
#include <daug/plot/svg.h>

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <vector>

namespace daug::plugins {

namespace svg = daug::plot::svg;

int64_t curve_smoothing_span(int64_t rows) { return std::max<int64_t>(1, rows / 20); }

std::string training_curves_html(const std::filesystem::path& csv, const std::string& stage) {
  const std::string head = "<figure class=\"curves\" data-stage=\"" + html::escape(stage) + "\">\n";
  const std::string name = "<code>" + html::escape(csv.filename().string()) + "</code>";
  auto note_only = [&](const std::string& why) {
    return head + "<figcaption>Stage [" + html::escape(stage) + "]: " + why + "</figcaption>\n</figure>\n";
  };
  if (!std::filesystem::exists(csv)) return note_only("no " + name + " (the stage wrote none).");
  // libs/train starts a fresh run with an empty file and writes the header with the first row.
  std::error_code ec;  // an unreadable file is left to the CSV reader, whose DataError names it
  if (std::filesystem::file_size(csv, ec) == 0 && !ec) return note_only(name + " has no rows yet.");
  const auto table = data::CsvTable::read(csv);
  if (table.rows() == 0) return note_only(name + " has no rows yet.");

  // Columns: the loss and every named part (anything the trainer's fixed columns do not cover) are loss series.
  const size_t step_col = table.column("step"), lr_col = table.column("lr"), loss_col = table.column("loss");
  static const std::set<std::string> kFixed = {"step", "epoch", "lr", "loss", "grad_norm", "elapsed_s"};
  std::vector<size_t> loss_cols = {loss_col};
  for (size_t c = 0; c < table.header().size(); ++c)
    if (!kFixed.count(table.header()[c])) loss_cols.push_back(c);
  const size_t n = table.rows();
  std::vector<double> step(n), lr(n);
  std::vector<std::vector<double>> loss(loss_cols.size(), std::vector<double>(n));
  for (size_t r = 0; r < n; ++r) {  // every cell is checked: a bad one throws "<file>:<line>: column 'x' ..."
    step[r] = static_cast<double>(table.integer(r, step_col));
    lr[r] = table.number(r, lr_col);
    for (size_t k = 0; k < loss_cols.size(); ++k) loss[k][r] = table.number(r, loss_cols[k]);
  }

  const int64_t span = curve_smoothing_span(static_cast<int64_t>(n));
  const double beta = svg::ema_beta_for_span(static_cast<double>(span));
  svg::Chart lc;
  lc.title = "Loss";
  lc.x_title = "step";
  lc.x_integer = true;
  lc.y_title = "loss";
  lc.y_scale = svg::Scale::automatic;
  lc.width = 620;
  lc.height = 330;
  for (size_t k = 0; k < loss_cols.size(); ++k) {
    const std::string col = table.header()[loss_cols[k]];
    const std::string color = svg::kPalette[k % std::size(svg::kPalette)];
    lc.lines.push_back({col, step, loss[k], color, 1.0, 0.35});
    // The smoothed copy repeats the raw line's gaps: they are counted once.
    lc.lines.push_back({col + " EMA", step, svg::ema(loss[k], beta), color, 2.0, 1.0, /*counted=*/false});
  }
  const auto loss_chart = svg::line_chart(lc);
  svg::Chart rc;
  rc.title = "Learning rate";
  rc.x_title = "step";
  rc.x_integer = true;
  rc.y_title = "lr";
  rc.width = 380;
  rc.height = 330;
  rc.lines.push_back({"lr", step, lr, "#444", 1.5, 1.0});
  const auto lr_chart = svg::line_chart(rc);

  std::string cap =
      fmt::format("Stage [{}]: {}, {} optimizer step{} (step {} to {}). ", html::escape(stage), name, n,
                  n == 1 ? "" : "s", static_cast<int64_t>(step.front()), static_cast<int64_t>(step.back()));
  cap += span > 1 ? fmt::format(
                        "Pale thin lines: the value logged at each step; thick lines (EMA): an exponential "
                        "moving average over a span of {} steps (rows / 20; &alpha; = 2/(span+1), debiased as "
                        "in TensorBoard, so it trails the raw curve by about half a span). ",
                        span)
                  : "Too few steps to smooth (span = rows / 20 &lt; 2): the thick EMA lines equal the raw values. ";
  cap += loss_chart.frame.ylog ? "The loss axis is logarithmic: the losses span two decades or more. "
                               : "The loss axis is linear. ";
  cap += "The learning rate is drawn raw, on a linear axis.";
  if (const int64_t bad = loss_chart.skipped + lr_chart.skipped; bad > 0)
    cap += fmt::format(" <b>{} logged value{} could not be drawn (not finite).</b>", bad, bad == 1 ? "" : "s");
  return head + "<div class=\"charts\">" + loss_chart.svg + "\n" + lr_chart.svg + "</div>\n<figcaption>" + cap +
         "</figcaption>\n</figure>\n";
}

}  // namespace daug::plugins
