#include "report_stage.h"

#include "html.h"
#include "test_support.h"
#include "fakes/fake_source.h"

#include <daug/data/image.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <sstream>

using namespace daug;
namespace html = daug::plugins::html;

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
