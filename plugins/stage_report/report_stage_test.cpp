#include "report_stage.h"

#include "curves.h"
#include "fakes/fake_source.h"
#include <daug/html/html.h>
#include "test_support.h"

#include <daug/data/image.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

using namespace daug;
namespace html = daug::html;

TEST(Html, Base64KnownVectors) {  // RFC 4648 §10
  EXPECT_EQ(html::base64(""), "");
  EXPECT_EQ(html::base64("f"), "Zg==");
  EXPECT_EQ(html::base64("fo"), "Zm8=");
  EXPECT_EQ(html::base64("foo"), "Zm9v");
  EXPECT_EQ(html::base64("foobar"), "Zm9vYmFy");
}

TEST(Html, MarkdownTablesAndEscaping) {
  auto h = html::markdown("### evaluate\n\nSome `code` & <b>\n\n| Metric | A |\n|---|---:|\n| AP | n/a (no positives) |\n");
  EXPECT_NE(h.find("<h3>evaluate</h3>"), std::string::npos) << h;
  EXPECT_NE(h.find("<p>Some <code>code</code> &amp; &lt;b&gt;</p>"), std::string::npos) << h;
  EXPECT_NE(h.find("<tr><th>Metric</th><th>A</th></tr>"), std::string::npos) << h;
  EXPECT_NE(h.find("<td class=\"na\">n/a (no positives)</td>"), std::string::npos) << h;
  EXPECT_EQ(h.find("---"), std::string::npos) << h;
}

TEST(Report, SelfContainedPageWithAllSections) {
  at::set_num_threads(1);
  daug::testing::TempDir tmp;
  auto src = std::make_shared<daug::testing::FakeSource>(tmp / "images", 12, 4);
  const auto& s = src->samples();
  // evaluate outputs
  std::filesystem::create_directories(tmp / "eval");
  daug::testing::write_text(tmp / "eval" / "tables.md", "### evaluate\n\n| Metric | A | Avg | wAvg |\n|---|---:|---:|---:|\n"
                                                        "| R→I mAP@5 | 0.5000 | 0.5000 | 0.5000 |\n");
  nlohmann::json ex = nlohmann::json::array();
  nlohmann::json hits = nlohmann::json::array();
  for (int i = 0; i < 5; ++i)
    hits.push_back({{"id", s[i].id}, {"image", s[i].image.string()}, {"labels", {"Edema"}}, {"score", 0.5 - 0.1 * i}});
  ex.push_back({{"id", s[9].id}, {"image", s[9].image.string()}, {"report", "edema <both> lungs"},
                {"report_generated", true}, {"labels", {"Edema"}}, {"by_report", hits}, {"by_image", hits}});
  daug::testing::write_text(tmp / "eval" / "retrieval_examples.json", ex.dump());
  // heatmap overlays and a classifier summary
  data::save_png(tmp / "hm" / "overlays" / "img9_+nof.png", at::rand({3, 8, 24}));
  data::save_png(tmp / "hm" / "overlays" / "img1_+nof.png", at::rand({3, 8, 24}));
  daug::testing::write_text(tmp / "clf" / "summary.md", "### train_classifier\n\nAP per super-class\n");

  plugins::ReportOptions o;
  o.overlays = 1;
  plugins::ReportStage st(o, src, {"evaluate", "heatmaps", "train_classifier"});
  daug::testing::TestContext bctx;
  std::filesystem::create_directories(tmp / "out");
  StageContext ctx{tmp / "out",
                   [&](const std::string& t, const std::string& name) -> std::filesystem::path {
                     if (t == "evaluate" && name == artifacts::kTables) return tmp / "eval" / "tables.md";
                     if (t == "evaluate" && name == artifacts::kRetrievalExamples)
                       return tmp / "eval" / "retrieval_examples.json";
                     if (t == "heatmaps" && name == artifacts::kOverlays) return tmp / "hm" / "overlays";
                     if (t == "train_classifier" && name == artifacts::kSummary) return tmp / "clf" / "summary.md";
                     throw ConfigError("stage [" + t + "] has not run");
                   },
                   bctx, 0, 1, false, st.outputs()};
  st.run(ctx);
  std::ifstream in(tmp / "out" / "report.html");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string page = ss.str();
  EXPECT_NE(page.find("Reports are generated from labels"), std::string::npos);
  EXPECT_NE(page.find("<td>0.5000</td>"), std::string::npos);
  EXPECT_NE(page.find("AP per super-class"), std::string::npos);
  EXPECT_NE(page.find("img9_+nof"), std::string::npos);   // the test image is shown first
  EXPECT_EQ(page.find("img1_+nof"), std::string::npos);   // overlays = 1
  EXPECT_NE(page.find("edema &lt;both&gt; lungs"), std::string::npos);
  EXPECT_NE(page.find("cos=0.500"), std::string::npos);
  // self-contained: every src is a data URI (query + 5 hits + 1 overlay)
  std::regex src_re("src=\"([^\"]{0,14})");
  int n = 0;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), src_re); it != std::sregex_iterator(); ++it, ++n)
    EXPECT_EQ((*it)[1].str().rfind("data:image/png", 0), 0u);
  EXPECT_EQ(n, 7);
  EXPECT_NE(st.summary(tmp / "out").find("report.html"), std::string::npos);
}

TEST(Report, LocalizeSectionShowsTheTableAndGroundTruthOverlays) {
  at::set_num_threads(1);
  daug::testing::TempDir tmp;
  auto src = std::make_shared<daug::testing::FakeSource>(tmp / "images", 3, 1);
  daug::testing::write_text(tmp / "loc" / "localization.md",
                            "### Localisation [heatmaps] vs [dev]\n\n| Label | Map | N |\n|---|---|---:|\n"
                            "| Mass | heatmap | 2 |\n|  | centred Gaussian | 2 |\n");
  data::save_png(tmp / "loc" / "overlays" / "a_Mass_hit.png", at::rand({3, 8, 8}));
  data::save_png(tmp / "loc" / "overlays" / "b_Mass_miss.png", at::rand({3, 8, 8}));
  plugins::ReportOptions o;
  o.evaluate_stage = "";
  o.heatmap_stages = {};
  o.extra_stages = {};
  o.localize_stages = {"localize", "localize_other"};
  plugins::ReportStage st(o, src, {"localize"});
  daug::testing::TestContext bctx;
  std::filesystem::create_directories(tmp / "out");
  StageContext ctx{tmp / "out",
                   [&](const std::string& t, const std::string& name) -> std::filesystem::path {
                     if (t == "localize" && name == "localization") return tmp / "loc" / "localization.md";
                     if (t == "localize" && name == artifacts::kOverlays) return tmp / "loc" / "overlays";
                     throw ConfigError("stage [" + t + "] has not run");
                   },
                   bctx,
                   0,
                   1,
                   false,
                   st.outputs()};
  st.run(ctx);
  std::ifstream in(tmp / "out" / "report.html");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string page = ss.str();
  EXPECT_NE(page.find("<h2>Localisation [localize]</h2>"), std::string::npos) << page;
  EXPECT_NE(page.find("<td>centred Gaussian</td>"), std::string::npos);
  EXPECT_NE(page.find("alt=\"a_Mass_hit\""), std::string::npos);
  EXPECT_NE(page.find("alt=\"b_Mass_miss\""), std::string::npos);
  EXPECT_NE(page.find(">miss</span>"), std::string::npos);
  EXPECT_NE(page.find("green: ground-truth boxes"), std::string::npos);
  // a configured localize stage that did not run: a note, not an error
  EXPECT_NE(page.find("<h2>Localisation [localize_other]</h2>\n<p class=\"muted\">The stage did not run"),
            std::string::npos);
  // evaluate_stage = "": no evaluation or retrieval sections
  EXPECT_EQ(page.find("<h2>Evaluation</h2>"), std::string::npos);
  EXPECT_EQ(page.find("Retrieval examples"), std::string::npos);
}

namespace {

/// A losses.csv as libs/train writes it: step,epoch,lr,loss,grad_norm,elapsed_s[,parts], `rows` rows.
std::string losses_csv(int rows, const std::vector<std::string>& parts, double loss0, double decay) {
  std::string s = "step,epoch,lr,loss,grad_norm,elapsed_s";
  for (const auto& p : parts) s += "," + p;
  s += "\n";
  for (int i = 0; i < rows; ++i) {
    s += fmt::format("{},{},{:.6g},{:.6g},{:.6g},{:.3f}", i, i / 10, 1e-4 * std::min(1.0, (i + 1) / 5.0),
                     loss0 * std::exp(-decay * i), 1.5, 0.1 * i);
    for (size_t k = 0; k < parts.size(); ++k) s += fmt::format(",{:.6g}", (k + 1) * 0.5 * std::exp(-decay * i));
    s += "\n";
  }
  return s;
}

/// The page the report writes when the stages in `present` publish the losses.csv files under tmp/<stage>/.
std::string report_with_losses(daug::testing::TempDir& tmp, const std::vector<std::string>& present) {
  auto src = std::make_shared<daug::testing::FakeSource>(tmp / "images", 3, 1);
  plugins::ReportOptions o;
  o.evaluate_stage = "";
  o.heatmap_stages = {};
  o.extra_stages = {"train_classifier", "train_clip"};
  plugins::ReportStage st(o, src, present);
  daug::testing::TestContext bctx;
  std::filesystem::create_directories(tmp / "out");
  StageContext ctx{tmp / "out",
                   [&](const std::string& t, const std::string& name) -> std::filesystem::path {
                     // Every stage whose name starts with "train" declares `losses`; the others do not.
                     if (t.rfind("train", 0) == 0 && name == artifacts::kLosses) return tmp / t / "losses.csv";
                     throw ConfigError("[" + t + "] declares no artifact '" + name + "'");
                   },
                   bctx,
                   0,
                   1,
                   false,
                   st.outputs()};
  st.run(ctx);
  std::ifstream in(tmp / "out" / "report.html");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The <figure class="curves"> of stage `t` in `page` ("" if none).
std::string figure_of(const std::string& page, const std::string& t) {
  const auto a = page.find("<figure class=\"curves\" data-stage=\"" + t + "\"");
  if (a == std::string::npos) return "";
  return page.substr(a, page.find("</figure>", a) - a);
}

int occurrences(const std::string& s, const std::string& what) {
  int n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(Report, TrainingCurvesOneFigurePerStageWithALossesArtifact) {
  at::set_num_threads(1);
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "train_classifier" / "losses.csv", losses_csv(50, {}, 2.0, 0.1));  // 2 → 0.015
  daug::testing::write_text(tmp / "train_clip" / "losses.csv", losses_csv(40, {"clip", "i2c_bce"}, 1.0, 0.01));
  daug::testing::write_text(tmp / "train_diffusion" / "losses.csv", losses_csv(1, {}, 0.3, 0.0));  // one row
  daug::testing::write_text(tmp / "train_fresh" / "losses.csv", "");  // started, nothing logged yet
  daug::testing::write_text(tmp / "train_header" / "losses.csv", "step,epoch,lr,loss,grad_norm,elapsed_s\n");
  // train_diffusion is not in extra_stages: it is drawn because it is an upstream stage with a `losses` artifact;
  // [heatmaps] declares none; [train_gone] declares one but wrote no file.
  const std::string page = report_with_losses(tmp, {"heatmaps", "train_classifier", "train_clip", "train_diffusion",
                                                    "train_fresh", "train_header", "train_gone"});
  EXPECT_EQ(occurrences(page, "<h2>Training curves</h2>"), 1);
  EXPECT_EQ(occurrences(page, "<figure class=\"curves\""), 6) << page;
  EXPECT_EQ(figure_of(page, "heatmaps"), "");
  EXPECT_LT(page.find("data-stage=\"train_classifier\""), page.find("data-stage=\"train_clip\""));

  const std::string clf = figure_of(page, "train_classifier");
  EXPECT_EQ(occurrences(clf, "<svg "), 2);  // loss, learning rate
  EXPECT_EQ(occurrences(clf, "<path class=\"series\""), 3);
  for (const char* s : {"loss", "loss EMA", "lr"})
    EXPECT_EQ(occurrences(clf, std::string("<path class=\"series\" data-series=\"") + s + "\""), 1) << s;
  // 50 rows: one path of 50 points per loss line; 50 / 20 = a span of 2 steps; 2 → 0.015 spans two decades.
  const auto d = clf.find(" d=\"M", clf.find("data-series=\"loss\""));
  EXPECT_EQ(occurrences(clf.substr(d, clf.find('"', d + 4) - d), " L"), 49);
  EXPECT_NE(clf.find("50 optimizer steps (step 0 to 49)"), std::string::npos) << clf;
  EXPECT_NE(clf.find("span of 2 steps"), std::string::npos);
  EXPECT_NE(clf.find("The loss axis is logarithmic"), std::string::npos);

  const std::string clip = figure_of(page, "train_clip");
  for (const char* s : {"loss", "loss EMA", "clip", "clip EMA", "i2c_bce", "i2c_bce EMA", "lr"})
    EXPECT_EQ(occurrences(clip, std::string("<path class=\"series\" data-series=\"") + s + "\""), 1) << s;
  for (const char* s : {"grad_norm", "epoch", "elapsed_s"})
    EXPECT_EQ(clip.find(std::string("data-series=\"") + s), std::string::npos) << s;
  EXPECT_NE(clip.find("The loss axis is linear"), std::string::npos);

  const std::string one = figure_of(page, "train_diffusion");  // one row: dots, not an empty chart
  EXPECT_NE(one.find("1 optimizer step (step 0 to 0)"), std::string::npos) << one;
  EXPECT_EQ(occurrences(one, "<circle class=\"point\" data-series=\"loss\""), 1);
  EXPECT_NE(one.find("Too few steps to smooth"), std::string::npos);
  EXPECT_NE(figure_of(page, "train_fresh").find("has no rows yet"), std::string::npos);
  EXPECT_NE(figure_of(page, "train_header").find("has no rows yet"), std::string::npos);
  EXPECT_NE(figure_of(page, "train_gone").find("no <code>losses.csv</code>"), std::string::npos);
}

TEST(Report, MalformedLossesCsvIsShownWithItsFileAndLine) {
  at::set_num_threads(1);
  daug::testing::TempDir tmp;
  std::string bad = losses_csv(5, {}, 1.0, 0.1);
  bad.replace(bad.find("\n3,0,"), 5, "\n3,0,oops,");  // a 7th field on line 5
  daug::testing::write_text(tmp / "train_classifier" / "losses.csv", bad);
  std::string nan_word = losses_csv(5, {"clip"}, 1.0, 0.1);
  const auto row2 = nan_word.find("\n2,0,");
  const auto loss_at = nan_word.find(',', nan_word.find(',', nan_word.find(',', row2 + 1) + 1) + 1) + 1;
  nan_word.replace(loss_at, nan_word.find(',', loss_at) - loss_at, "1.5x");  // line 4: loss = "1.5x"
  daug::testing::write_text(tmp / "train_clip" / "losses.csv", nan_word);
  daug::testing::write_text(tmp / "train_diffusion" / "losses.csv", losses_csv(3, {}, 1.0, 0.1));
  const std::string page = report_with_losses(tmp, {"train_classifier", "train_clip", "train_diffusion"});
  const std::string clf = figure_of(page, "train_classifier"), clip = figure_of(page, "train_clip");
  EXPECT_NE(clf.find("Cannot draw the training curves of [train_classifier]"), std::string::npos) << clf;
  EXPECT_NE(clf.find((tmp / "train_classifier" / "losses.csv").string() + ":5: expected 6 fields"), std::string::npos)
      << clf;
  EXPECT_NE(
      clip.find((tmp / "train_clip" / "losses.csv").string() + ":4: column 'loss' must be a number, but got '1.5x'"),
      std::string::npos)
      << clip;
  EXPECT_EQ(clip.find("<svg"), std::string::npos);
  // The other stages are still drawn.
  EXPECT_EQ(occurrences(figure_of(page, "train_diffusion"), "<svg "), 2);
  // Called directly, the same file is a DataError.
  EXPECT_THROW(plugins::training_curves_html(tmp / "train_clip" / "losses.csv", "train_clip"), DataError);
}

TEST(Report, NonFiniteLossesAreGapsAndSaidInTheCaption) {
  at::set_num_threads(1);
  daug::testing::TempDir tmp;
  daug::testing::write_text(tmp / "train_clip" / "losses.csv",
                            "step,epoch,lr,loss,grad_norm,elapsed_s\n0,0,1e-4,1.0,1,0.1\n1,0,1e-4,nan,1,0.2\n"
                            "2,0,1e-4,0.8,1,0.3\n3,0,1e-4,0.7,1,0.4\n4,0,1e-4,inf,1,0.5\n");
  const std::string page = report_with_losses(tmp, {"train_clip"});
  const std::string clip = figure_of(page, "train_clip");
  EXPECT_NE(clip.find("<b>2 logged values could not be drawn (not finite).</b>"), std::string::npos) << clip;
  EXPECT_NE(clip.find(">2 points not drawn (non-finite)</text>"), std::string::npos) << clip;
  EXPECT_EQ(occurrences(clip, "<circle class=\"point\" data-series=\"loss\""), 1);  // step 0 alone
  EXPECT_EQ(clip.find("nan"), std::string::npos);
}
