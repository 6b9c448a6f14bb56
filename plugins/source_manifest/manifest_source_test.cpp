// The manifest source on small fixture trees.
#include "manifest_source.h"

#include <daug/data/image.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace {

using daug::plugins::ManifestSource;
using daug::testing::expect_error_contains;
using daug::testing::TempDir;

// Header with the 14 classes in reverse (any order is allowed) around the other columns.
std::string header() {
  std::string h = "patient,image";
  for (int i = 13; i >= 0; --i) h += std::string(",") + daug::kChexpertClasses[i];
  return h + ",split,report,study";
}

// Labels given in kChexpertClasses order, written in the file's reversed order.
std::string row(const std::string& patient, const std::string& image, const std::vector<std::string>& labels14,
                const std::string& split, const std::string& report, const std::string& study) {
  std::string r = patient + "," + image;
  for (int i = 13; i >= 0; --i) r += "," + labels14[i];
  return r + "," + split + "," + report + "," + study;
}

void png(const std::filesystem::path& p) {
  std::filesystem::create_directories(p.parent_path());
  daug::data::save_png(p, at::full({1, 4, 4}, 0.5f));
}

struct Fixture {
  TempDir d;
  Fixture() {
    png(d / "imgs" / "a" / "img1.png");
    png(d / "imgs" / "b" / "img2.png");
    png(d / "imgs" / "img3.png");
    std::vector<std::string> l1(14, "0"), l2(14, ""), l3(14, "0");
    l1[1] = "1";      // Cardiomegaly
    l1[9] = "-1.0";   // Pleural Effusion uncertain
    l2[13] = "1.0";   // No Finding, the rest blank
    l3[3] = "1";      // Lung Lesion
    daug::testing::write_text(
        d / "manifest.csv",
        header() + "\r\n" + row("p1", "a/img1.png", l1, "train", "\"Enlarged heart, \"\"mild\"\".\nNo effusion.\"", "s1") +
            "\r\n" + row("p2", "b/img2.png", l2, "validate", "", "") + "\r\n" +
            row("p3", "img3.png", l3, "test", "Nodule.", "s3") + "\r\n");
  }
  ManifestSource::Options options() const {
    ManifestSource::Options o;
    o.common.root = d.path().string();
    o.images_dir = "imgs";
    return o;
  }
};

TEST(ManifestSource, ReadsColumnsInAnyOrder) {
  Fixture f;
  ManifestSource src(f.options());
  const auto& s = src.samples();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].id, "img1");
  EXPECT_EQ(s[0].image, f.d / "imgs" / "a" / "img1.png");
  EXPECT_EQ(s[0].labels[daug::chexpert_index("Cardiomegaly")], 1.0f);
  EXPECT_EQ(s[0].labels[daug::chexpert_index("Pleural Effusion")], 0.0f);  // uncertain → zeros (default)
  EXPECT_EQ(s[0].report, "Enlarged heart, \"mild\".\nNo effusion.");
  EXPECT_FALSE(s[0].report_generated);
  EXPECT_EQ(s[0].study, "s1");
  EXPECT_EQ(s[0].patient, "p1");
  EXPECT_EQ(s[1].split, "val");                 // "validate" normalised
  EXPECT_EQ(s[1].study, "img2");                // empty study → the id
  EXPECT_EQ(s[1].labels[daug::chexpert_index("No Finding")], 1.0f);
  EXPECT_EQ(s[1].labels[daug::chexpert_index("Edema")], 0.0f);  // blank → zeros (default)
  EXPECT_EQ(s[2].split, "test");
  EXPECT_EQ(src.split("train+val").size(), 2u);
  auto pooled = src.superclasses().pool(s[2].labels);
  EXPECT_EQ(pooled, (std::vector<float>{0, 0, 1, 0, 0, 0, 0}));
}

TEST(ManifestSource, LabelPolicies) {
  Fixture f;
  auto o = f.options();
  o.labels.uncertain = "ones";
  o.labels.blank = "ignore";
  ManifestSource src(o);
  EXPECT_EQ(src.samples()[0].labels[daug::chexpert_index("Pleural Effusion")], 1.0f);
  EXPECT_TRUE(std::isnan(src.samples()[1].labels[daug::chexpert_index("Edema")]));
  EXPECT_EQ(src.samples()[1].labels[daug::chexpert_index("No Finding")], 1.0f);
  o.labels.uncertain = "U-Ones";
  expect_error_contains([&] { ManifestSource s(o); }, {"uncertain", "U-Ones"});
}

TEST(ManifestSource, MissingImagesSkippedOrStrict) {
  Fixture f;
  std::filesystem::remove(f.d / "imgs" / "b" / "img2.png");
  ManifestSource src(f.options());
  EXPECT_EQ(src.samples().size(), 2u);
  auto o = f.options();
  o.common.strict = true;
  expect_error_contains([&] { ManifestSource s(o); }, {"1 image files are missing", "img2.png"});
  expect_error_contains([&] { src.split("val"); }, {"split 'val'", "no images"});
}

TEST(ManifestSource, BadFiles) {
  TempDir d;
  ManifestSource::Options o;
  o.common.root = d.path().string();
  expect_error_contains([&] { ManifestSource s(o); }, {"manifest.csv", "does not exist"});
  daug::testing::write_text(d / "manifest.csv", "image,split,Cardiomegaly,No Finding\nx.png,train,1,0\n");
  expect_error_contains([&] { ManifestSource s(o); },
                        {"missing label columns", "Enlarged Cardiomediastinum", "Support Devices", "Fracture"});
  Fixture f;
  std::string text = header() + "\n" + row("p", "img3.png", std::vector<std::string>(14, "0"), "holdout", "", "") + "\n";
  daug::testing::write_text(f.d / "m2.csv", text);
  auto o2 = f.options();
  o2.csv = "m2.csv";
  expect_error_contains([&] { ManifestSource s(o2); }, {"m2.csv:2", "'holdout'"});
  std::vector<std::string> bad(14, "0");
  bad[5] = "yes";
  daug::testing::write_text(f.d / "m3.csv", header() + "\n" + row("p", "img3.png", bad, "train", "", "") + "\n");
  o2.csv = "m3.csv";
  expect_error_contains([&] { ManifestSource s(o2); }, {"m3.csv:2", "column 'Consolidation'", "'yes'"});
  // repeated stems need an id column
  daug::testing::write_text(f.d / "m4.csv", header() + "\n" + row("p", "a/img1.png", bad, "train", "", "") + "\n" +
                                                row("p", "a/img1.png", bad, "train", "", "") + "\n");
  bad[5] = "0";
  daug::testing::write_text(f.d / "m4.csv", header() + "\n" + row("p", "a/img1.png", bad, "train", "", "") + "\n" +
                                                row("p", "a/img1.png", bad, "train", "", "") + "\n");
  o2.csv = "m4.csv";
  expect_error_contains([&] { ManifestSource s(o2); }, {"ids must be unique", "img1", "add an 'id' column"});
}

TEST(ManifestSource, IdColumnAndLimit) {
  Fixture f;
  std::vector<std::string> z(14, "0");
  daug::testing::write_text(f.d / "m.csv", header() + ",id\n" + row("p", "a/img1.png", z, "train", "", "") + ",x1\n" +
                                               row("p", "a/img1.png", z, "train", "", "") + ",x2\n");
  auto o = f.options();
  o.csv = "m.csv";
  ManifestSource src(o);
  ASSERT_EQ(src.samples().size(), 2u);
  EXPECT_EQ(src.samples()[1].id, "x2");
  o.common.limit = 1;
  EXPECT_EQ(ManifestSource(o).samples().size(), 1u);
  EXPECT_NE(src.describe().find("2 images: train 2"), std::string::npos) << src.describe();
}

TEST(ManifestSource, InvalidUtf8IsCaughtAtLoadWithFileRowAndOffset) {
  // The review's D_report_nonutf8: a 0xFF byte in a report passed loading and training, then [evaluate] died in
  // the JSON writer ("invalid UTF-8 byte at index 41: 0xFF") naming no file or row.
  Fixture f;
  std::vector<std::string> z(14, "0");
  daug::testing::write_text(
      f.d / "m.csv", header() + "\n" + row("M\xfcller", "a/img1.png", z, "train", "Heart size normal.\xff", "s1") +
                         "\n" + row("p2", "img3.png", z, "test", "Clear \xe2\x82.", "s3") + "\n");
  auto o = f.options();
  o.csv = "m.csv";
  ManifestSource src(o);  // strict = false: replaced, counted, logged
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(src.samples()[0].report, "Heart size normal." + R);
  EXPECT_EQ(src.samples()[0].patient, "M" + R + "ller");   // Latin-1 ü
  EXPECT_EQ(src.samples()[1].report, "Clear " + R + ".");  // a cut 3-byte sequence is one U+FFFD
  for (const auto& s : src.samples())
    for (const auto* t : {&s.report, &s.patient, &s.id, &s.study})
      EXPECT_EQ(daug::data::first_invalid_utf8(*t), std::string::npos) << *t;
  o.common.strict = true;
  expect_error_contains([&] { ManifestSource s(o); },
                        {"m.csv:2: column 'report': invalid UTF-8 at byte offset 18 (bytes ff)", "strict = true"});
  daug::testing::write_text(f.d / "m.csv", header() + "\n" + row("p", "a/img1.png", z, "train", "ok", "s1") + "\n" +
                                               row("M\xfcller", "img3.png", z, "test", "ok", "s3") + "\n");
  expect_error_contains([&] { ManifestSource s(o); },
                        {"m.csv:3: column 'patient': invalid UTF-8 at byte offset 1 (bytes fc 6c 6c 65)"});
}

}  // namespace
