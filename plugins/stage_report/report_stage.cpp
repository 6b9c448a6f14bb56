#include "report_stage.h"

#include "curves.h"
#include <daug/html/html.h>

#include <daug/build_context.h>
#include <daug/checkpoint.h>
#include <daug/data/image.h>
#include <daug/error.h>
#include <daug/labels.h>
#include <daug/log.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace daug::plugins {

void ReportOptions::visit(OptionVisitor& v) {
  v("data", data, "Source table (labels of the shown images; whether reports are generated)",
    Check::required_non_empty());
  v("evaluate_stage", evaluate_stage, "evaluate stage whose tables and retrieval examples are shown");
  v("heatmap_stages", heatmap_stages, "heatmap stages whose overlay PNGs are shown (one section each)");
  v("extra_stages", extra_stages,
    "stages whose summary.md is included (e.g. train_classifier's AP table); the training curves of these and of "
    "every other stage the report reads are drawn when the stage declares a `losses` artifact");
  v("localize_stages", localize_stages,
    "localize stages whose localisation table and ground-truth overlays are shown (one section each)");
  v("overlays", overlays, "overlay images per heatmap or localize stage (test images first)", Check::at_least(0));
  v("examples", examples, "retrieval examples shown", Check::at_least(0));
  v("thumb_size", thumb_size, "retrieval thumbnail side in pixels", Check::range(16, 1024));
  v("title", title, "page title");
}

ReportStage::ReportStage(Options opts, std::shared_ptr<Source> data, std::vector<std::string> present)
    : opts_(std::move(opts)), data_(std::move(data)), present_(std::move(present)) {}

std::shared_ptr<Stage> ReportStage::create(Options opts, BuildContext& ctx) {
  auto data = ctx.component<Source>(opts.data);
  std::vector<std::string> present;
  std::vector<std::string> wanted = {opts.evaluate_stage};
  wanted.insert(wanted.end(), opts.heatmap_stages.begin(), opts.heatmap_stages.end());
  wanted.insert(wanted.end(), opts.extra_stages.begin(), opts.extra_stages.end());
  wanted.insert(wanted.end(), opts.localize_stages.begin(), opts.localize_stages.end());
  for (const auto& t : wanted)
    if (!t.empty() && ctx.config(t).exists() &&
        std::find(present.begin(), present.end(), t) == present.end()) {
      ctx.component<Stage>(t);  // declared dependency: its artifacts are read in run()
      present.push_back(t);
    }
  return std::make_shared<ReportStage>(std::move(opts), data, present);
}

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  DAUG_CHECK_AS(DataError, in.good(), "report: cannot read ", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string png_img(const std::string& bytes, const std::string& alt, const std::string& cls = "") {
  return fmt::format("<img{} alt=\"{}\" src=\"data:image/png;base64,{}\">", cls.empty() ? "" : " class=\"" + cls + "\"",
                     html::escape(alt), html::base64(bytes));
}

std::string labels_text(const std::vector<std::string>& labels) {
  if (labels.empty()) return "no positive label";
  std::string s;
  for (size_t i = 0; i < labels.size(); ++i) s += (i ? ", " : "") + labels[i];
  return s;
}

constexpr const char* kStyle = R"(<style>
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1240px}
h1{font-size:26px;margin-bottom:4px} h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;font-size:12px;margin:8px 0} th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left} td.na{color:#999}
.note{background:#fff4d6;border-left:4px solid #e0a800;padding:8px 12px;margin:12px 0}
.muted{color:#777} .ov{display:inline-block;margin:6px;vertical-align:top;font-size:12px;max-width:400px}
.ov img{width:384px;image-rendering:pixelated;border:1px solid #ccc}
.ex{border:1px solid #ddd;border-radius:6px;padding:10px;margin:12px 0}
.hits{display:flex;gap:8px;flex-wrap:wrap} .hit{font-size:11px;width:140px}
.hit img,.q img{border:1px solid #ccc} .hit.rel img{border:3px solid #2a9d3a} .hit.irr img{border:3px solid #c0392b}
.q{display:flex;gap:12px;align-items:flex-start;margin-bottom:8px} blockquote{margin:0;font-style:italic;color:#333}
figure.curves{margin:12px 0 20px} .charts{display:flex;gap:12px;flex-wrap:wrap} .charts svg{border:1px solid #ddd}
figcaption{font-size:12px;color:#444;max-width:1014px;margin-top:4px} .note.error{background:#fde2e0;border-left-color:#c0392b}
</style>)";

}  // namespace

void ReportStage::run(StageContext& ctx) {
  const auto& all = data_->samples();
  std::map<std::string, const Sample*> by_id;
  bool generated = false;
  for (const auto& s : all) {
    by_id[s.id] = &s;
    generated |= s.report_generated;
  }
  // Artifact `name` of stage `table`, or an empty path when that stage is not configured, did not run in this
  // pipeline, or declares no such artifact.
  auto artifact = [&](const std::string& table, const char* name) -> std::filesystem::path {
    if (table.empty() || std::find(present_.begin(), present_.end(), table) == present_.end()) return {};
    try {
      return ctx.artifact(table, name);
    } catch (const ConfigError&) {
      return {};
    }
  };
  auto thumbs = ctx.output("thumbs");
  std::filesystem::create_directories(thumbs);
  auto thumb = [&](const std::string& id, const std::filesystem::path& image) {
    auto p = thumbs / (id + ".png");
    if (!std::filesystem::exists(p)) {
      auto img = data::load_gray(image);
      data::save_png(p, data::resize(img, opts_.thumb_size, opts_.thumb_size, data::Filter::area).clamp(0, 1));
    }
    return read_file(p);
  };

  std::string body;
  body += "<h1>" + html::escape(opts_.title) + "</h1>\n";
  body += fmt::format("<p class=\"muted\">Data: {} ({} images). Stage directory: {}</p>\n",
                      html::escape(data_->describe()), all.size(), html::escape(ctx.output_dir.string()));
  if (generated)
    body += "<div class=\"note\"><b>Reports are generated from labels.</b> This dataset has no radiology reports "
            "(e.g. NIH ChestX-ray14); its report text was generated from the image labels, so report→image "
            "retrieval here measures label matching, not free-text understanding.</div>\n";

  // 1. Metric tables (none when evaluate_stage = "", e.g. a heatmaps + localize pipeline).
  if (!opts_.evaluate_stage.empty()) body += "<h2>Evaluation</h2>\n";
  const auto tables = artifact(opts_.evaluate_stage, artifacts::kTables);
  const auto examples_file = artifact(opts_.evaluate_stage, artifacts::kRetrievalExamples);
  nlohmann::json examples;
  if (!tables.empty() && std::filesystem::exists(tables)) {
    body += html::markdown(read_file(tables));
    if (!examples_file.empty() && std::filesystem::exists(examples_file))
      examples = nlohmann::json::parse(read_file(examples_file));
  } else if (!opts_.evaluate_stage.empty()) {
    body += "<p class=\"muted\">No evaluate stage ran in this pipeline (table [" + html::escape(opts_.evaluate_stage) +
            "]).</p>\n";
  }

  // 2. Other stages' summaries (e.g. the noise-aware classifier's AP table, CLIP training).
  for (const auto& t : opts_.extra_stages) {
    const auto summary = artifact(t, artifacts::kSummary);
    if (summary.empty() || !std::filesystem::exists(summary)) continue;
    body += "<h2>Stage [" + html::escape(t) + "]</h2>\n" + html::markdown(read_file(summary));
  }

  // Training curves: every stage this report reads that declares a `losses` artifact (found by the artifact name,
  // not the plugin), one figure each. A malformed losses.csv is shown as its DataError (file:line) in place of the
  // figure, not raised: the rest of the report stays readable.
  std::string curves;
  for (const auto& t : present_) {
    const auto csv = artifact(t, artifacts::kLosses);
    if (csv.empty()) continue;
    try {
      curves += training_curves_html(csv, t);
    } catch (const DataError& e) {
      log::warn("[report] no training curves for [{}]: {}", t, e.what());
      curves += "<figure class=\"curves\" data-stage=\"" + html::escape(t) +
                "\">\n<div class=\"note error\"><b>Cannot draw the training curves of [" + html::escape(t) + "]:</b> " +
                html::escape(e.what()) + "</div>\n</figure>\n";
    }
  }
  if (!curves.empty()) body += "<h2>Training curves</h2>\n" + curves;

  // 3. Heatmap overlays, one section per heatmap stage; test images first.
  for (const auto& t : opts_.heatmap_stages) {
    body += "<h2>Heatmaps [" + html::escape(t) + "]</h2>\n";
    const auto overlays = artifact(t, artifacts::kOverlays);
    if (overlays.empty() || !std::filesystem::is_directory(overlays)) {
      body += "<p class=\"muted\">No overlays: the stage did not run in this pipeline or wrote none.</p>\n";
      continue;
    }
    std::vector<std::pair<int, std::filesystem::path>> files;
    for (const auto& e : std::filesystem::directory_iterator(overlays)) {
      if (e.path().extension() != ".png") continue;
      const auto stem = e.path().stem().string();
      const auto id = stem.substr(0, stem.rfind('_'));
      auto it = by_id.find(id);
      files.emplace_back(it != by_id.end() && it->second->split == "test" ? 0 : 1, e.path());
    }
    std::sort(files.begin(), files.end());
    body += "<p>Each panel: input | translated toward the target (guided diffusion) | heatmap |input − translated|.</p>\n";
    for (size_t i = 0; i < files.size() && static_cast<int64_t>(i) < opts_.overlays; ++i) {
      const auto stem = files[i].second.stem().string();
      const auto id = stem.substr(0, stem.rfind('_'));
      auto it = by_id.find(id);
      std::vector<std::string> labels;
      std::string split;
      if (it != by_id.end()) {
        split = it->second->split;
        for (size_t c = 0; c < it->second->labels.size() && c < kChexpertClasses.size(); ++c)
          if (it->second->labels[c] > 0.5f) labels.emplace_back(kChexpertClasses[c]);
      }
      body += "<div class=\"ov\">" + png_img(read_file(files[i].second), stem) + "<br><b>" + html::escape(stem) +
              "</b> " + html::escape(split) + "<br>" + html::escape(labels_text(labels)) + "</div>\n";
    }
    if (files.empty()) body += "<p class=\"muted\">The overlays folder is empty.</p>\n";
  }

  // 4. Localisation against ground truth, one section per localize stage: its table (heatmap rows beside the
  // reference maps) and overlays with the boxes and mask contours; the file names say hit or miss.
  for (const auto& t : opts_.localize_stages) {
    body += "<h2>Localisation [" + html::escape(t) + "]</h2>\n";
    const auto table = artifact(t, "localization");  // localization.md of the localize stage
    if (table.empty() || !std::filesystem::exists(table)) {
      body += "<p class=\"muted\">The stage did not run in this pipeline.</p>\n";
      continue;
    }
    body += html::markdown(read_file(table));
    const auto overlays = artifact(t, artifacts::kOverlays);
    std::vector<std::filesystem::path> files;
    if (!overlays.empty() && std::filesystem::is_directory(overlays))
      for (const auto& e : std::filesystem::directory_iterator(overlays))
        if (e.path().extension() == ".png") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (!files.empty())
      body +=
          "<p>Heatmap (hot colours) on the image; green: ground-truth boxes of the label; cyan: mask contour; "
          "blue cross: the heatmap's maximum (the pointing game's point); hit/miss: the point is in a box.</p>\n";
    for (size_t i = 0; i < files.size() && static_cast<int64_t>(i) < opts_.overlays; ++i) {
      const auto stem = files[i].stem().string();
      const bool hit = stem.size() > 4 && stem.compare(stem.size() - 4, 4, "_hit") == 0;
      body += "<div class=\"ov\">" + png_img(read_file(files[i]), stem) + "<br><b>" + html::escape(stem) + "</b> " +
              (hit ? "<span style=\"color:#2a9d3a\">hit</span>" : "<span style=\"color:#c0392b\">miss</span>") +
              "</div>\n";
    }
  }

  // 5. Retrieval examples.
  if (!opts_.evaluate_stage.empty()) body += "<h2>Retrieval examples (report → image)</h2>\n";
  if ((!examples.is_array() || examples.empty()) && !opts_.evaluate_stage.empty())
    body += "<p class=\"muted\">No retrieval examples.</p>\n";
  for (size_t e = 0; examples.is_array() && e < examples.size() && static_cast<int64_t>(e) < opts_.examples; ++e) {
    const auto& x = examples[e];
    const auto qlabels = x["labels"].get<std::vector<std::string>>();
    std::set<std::string> qset(qlabels.begin(), qlabels.end());
    body += "<div class=\"ex\"><div class=\"q\">" +
            png_img(thumb(x["id"].get<std::string>(), x["image"].get<std::string>()), "query image") +
            "<div><b>Query " + html::escape(x["id"].get<std::string>()) + "</b> (" +
            html::escape(labels_text(qlabels)) + ")" + (x.value("report_generated", false) ? " — generated report" : "") +
            "<blockquote>" + html::escape(x["report"].get<std::string>()) + "</blockquote></div></div>\n";
    body += "<div class=\"hits\">";
    const auto& hits = x["by_report"];
    for (size_t r = 0; r < hits.size() && r < 5; ++r) {
      const auto& h = hits[r];
      const auto hl = h["labels"].get<std::vector<std::string>>();
      bool shared = false;
      for (const auto& l : hl) shared |= qset.count(l) > 0;
      body += std::string("<div class=\"hit ") + (shared ? "rel" : "irr") + "\">" +
              png_img(thumb(h["id"].get<std::string>(), h["image"].get<std::string>()), h["id"].get<std::string>()) +
              fmt::format("<br>#{} {} cos={:.3f}<br>", r + 1, html::escape(h["id"].get<std::string>()),
                          h["score"].get<double>()) +
              html::escape(labels_text(hl)) + "</div>";
    }
    body += "</div></div>\n";
  }
  if (examples.is_array() && !examples.empty())
    body += "<p class=\"muted\">Green border: the retrieved image shares at least one positive label with the query; "
            "red: none.</p>\n";

  const std::string page = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" +
                           html::escape(opts_.title) + "</title>" + kStyle + "</head><body>\n" + body +
                           "</body></html>\n";
  write_file_atomic(ctx.output("report"), page);
  log::info("[report] wrote {} ({} KiB)", ctx.output("report").string(), page.size() / 1024);
}

std::string ReportStage::summary(const std::filesystem::path& output_dir) const {
  return fmt::format("### report\n\nHTML report: `{}`\n", output_path(output_dir, "report").string());
}

std::vector<Artifact> ReportStage::outputs() const {
  return {{"report", "report.html",
           "self-contained HTML report (tables, summaries, training curves, overlays, retrieval examples)"},
          {"thumbs", "thumbs", "PNG thumbnails used by the report"}};
}

std::string ReportStage::describe() const {
  return fmt::format("report(evaluate={}, heatmaps={})", opts_.evaluate_stage, opts_.heatmap_stages.size());
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Stage, "report", daug::plugins::ReportStage,
                     "self-contained HTML report: metric tables, stage summaries, training curves, heatmap overlays, "
                     "retrieval examples")
