// The nih source on the embedded 585-image sample (counts from its README), on Data_Entry_2017-format fixtures,
// and the generated reports.
#include "nih_source.h"

#include <daug/data/csv.h>
#include <daug/data/hash.h>
#include <daug/data/image.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

namespace {

using daug::plugins::NihSource;
using daug::testing::expect_error_contains;
using daug::testing::TempDir;

const std::string kSample = std::string(DAUG_SOURCE_DIR) + "/examples/data/nih-cxr14-sample";

NihSource::Options sample_options() {
  NihSource::Options o;
  o.common.root = kSample;
  return o;
}

int cls(const char* name) { return daug::chexpert_index(name); }

TEST(NihSource, EmbeddedSampleCountsMatchItsReadme) {
  NihSource src(sample_options());
  const auto& s = src.samples();
  ASSERT_EQ(s.size(), 585u);
  EXPECT_EQ(src.split("train").size(), 406u);
  EXPECT_EQ(src.split("val").size(), 60u);
  EXPECT_EQ(src.split("test").size(), 119u);
  EXPECT_EQ(src.split("train+val").size(), 466u);

  // Super-class positives (README "Images with at least one positive member").
  const auto& g = src.superclasses();
  ASSERT_EQ(g.size(), 7);
  std::vector<int> pos(7, 0);
  for (const auto& x : s) {
    auto p = g.pool(x.labels);
    for (int k = 0; k < 7; ++k) pos[k] += p[k] > 0.5f;
  }
  EXPECT_EQ(pos, (std::vector<int>{99, 49, 132, 123, 122, 126, 0}));

  // Per-class counts from the README's label table via the NIH→CheXpert mapping.
  std::map<int, int> n;
  for (const auto& x : s)
    for (int c = 0; c < 14; ++c) n[c] += x.labels[c] > 0.5f;
  EXPECT_EQ(n[cls("Lung Opacity")], 113);       // Infiltration
  EXPECT_EQ(n[cls("Pleural Effusion")], 74);    // Effusion
  EXPECT_EQ(n[cls("Pleural Other")], 64);       // Pleural_Thickening
  EXPECT_EQ(n[cls("Atelectasis")], 86);
  EXPECT_EQ(n[cls("Pneumothorax")], 41);
  EXPECT_EQ(n[cls("No Finding")], 99);
  EXPECT_EQ(n[cls("Enlarged Cardiomediastinum")], 0);
  EXPECT_EQ(n[cls("Fracture")], 0);
  EXPECT_EQ(n[cls("Support Devices")], 0);
  // Without Pneumothorax the 5th super-class is Atelectasis alone: 86 (README).
  auto o = sample_options();
  o.common.superclass_members[4] = {"Atelectasis"};
  o.common.superclass_names[4] = "Atelectasis";
  NihSource alt(o);
  int atel = 0;
  for (const auto& x : alt.samples()) atel += alt.superclasses().pool(x.labels)[4] > 0.5f;
  EXPECT_EQ(atel, 86);
}

TEST(NihSource, OneImageInDetail) {
  NihSource src(sample_options());
  const daug::Sample* x = nullptr;
  for (const auto& s : src.samples())
    if (s.id == "00000100_000") x = &s;
  ASSERT_NE(x, nullptr);
  // labels.csv: Atelectasis, Effusion, Infiltration; train; patient 100
  for (int c = 0; c < 14; ++c) {
    const bool expect = c == cls("Atelectasis") || c == cls("Pleural Effusion") || c == cls("Lung Opacity");
    EXPECT_EQ(x->labels[c], expect ? 1.0f : 0.0f) << daug::kChexpertClasses[c];
  }
  EXPECT_EQ(x->split, "train");
  EXPECT_EQ(x->patient, "100");
  EXPECT_EQ(x->image, std::filesystem::path(kSample) / "images" / "00000100_000.png");
  EXPECT_TRUE(x->report_generated);
  EXPECT_NE(x->report.find("atelectasis"), std::string::npos) << x->report;
  EXPECT_NE(x->report.find("effusion"), std::string::npos) << x->report;
  EXPECT_NE(src.describe().find("585 images: train 406, val 60, test 119"), std::string::npos) << src.describe();
}

TEST(NihSource, EmbeddedImagesDecode) {
  // Every 10th image of the sample: 256x256 8-bit gray PNG → [1,256,256] in [0,1], not blank.
  NihSource src(sample_options());
  for (size_t i = 0; i < src.samples().size(); i += 10) {
    at::Tensor x = daug::data::load_gray(src.samples()[i].image);
    ASSERT_EQ(x.sizes(), (at::IntArrayRef{1, 256, 256})) << src.samples()[i].id;
    EXPECT_GE(x.min().item<float>(), 0.0f);
    EXPECT_LE(x.max().item<float>(), 1.0f);
    EXPECT_GT((x.max() - x.min()).item<float>(), 0.3f) << src.samples()[i].id;
  }
}

TEST(NihSource, SplitRuleReproducesTheSampleSplit) {
  // The sample README: bucket = int(sha256(decimal patient id)[:8], 16) % 100; 0-69 train, 70-79 val, 80-99 test.
  NihSource src(sample_options());
  for (const auto& s : src.samples()) {
    int b = daug::data::sha256_bucket100(s.patient);
    EXPECT_EQ(s.split, b < 70 ? "train" : b < 80 ? "val" : "test") << s.id;
  }
}

// Writes the sample's labels as NIH's Data_Entry_2017 layout (no split column) into `dir`.
void write_data_entry(const std::filesystem::path& dir, size_t max_rows) {
  auto t = daug::data::CsvTable::read(kSample + "/labels.csv");
  std::ofstream f(dir / "Data_Entry_2017_v2020.csv");
  f << "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
       "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\r\n";
  const auto& labels = daug::plugins::nih_labels();
  for (size_t r = 0; r < t.rows() && r < max_rows; ++r) {
    std::string findings;
    for (const auto& l : labels)
      if (t.at(r, t.column(l)) == "1") findings += (findings.empty() ? "" : "|") + l;
    f << t.at(r, t.column("image")) << "," << findings << "," << t.at(r, t.column("follow_up")) << ","
      << t.at(r, t.column("patient_id")) << "," << t.at(r, t.column("age")) << "," << t.at(r, t.column("sex")) << ","
      << t.at(r, t.column("view")) << ",1024,1024,0.143,0.143\r\n";
  }
}

TEST(NihSource, DataEntryFormatGivesTheSameItems) {
  TempDir d;
  write_data_entry(d.path(), 100000);
  NihSource::Options o;
  o.common.root = d.path().string();
  o.images_dir = kSample + "/images";
  NihSource entry(o);
  NihSource sample(sample_options());
  ASSERT_EQ(entry.samples().size(), sample.samples().size());
  for (size_t i = 0; i < sample.samples().size(); ++i) {
    const auto& a = entry.samples()[i];
    const auto& b = sample.samples()[i];
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.split, b.split) << a.id;  // patient-bucket split without a split column
    EXPECT_EQ(a.patient, b.patient);
    EXPECT_EQ(a.report, b.report);
    for (int c = 0; c < 14; ++c) EXPECT_EQ(a.labels[c], b.labels[c]) << a.id << " " << c;
  }
  EXPECT_NE(entry.csv_path().find("Data_Entry_2017_v2020.csv"), std::string::npos);
  // view filter
  o.views = {"AP"};
  EXPECT_EQ(NihSource(o).samples().size(), 95u);  // README: PA 490, AP 95
}

TEST(NihSource, OfficialSplitLists) {
  TempDir d;
  write_data_entry(d.path(), 6);
  auto t = daug::data::CsvTable::read(kSample + "/labels.csv");
  daug::testing::write_text(d / "test_list.txt", t.at(0, 0) + "\n" + t.at(1, 0) + "\n");
  daug::testing::write_text(d / "train_val_list.txt", t.at(2, 0) + "\n" + t.at(3, 0) + "\n" + t.at(4, 0) + "\n");
  NihSource::Options o;
  o.common.root = d.path().string();
  o.images_dir = kSample + "/images";
  o.split_percent = {0, 100, 0};  // train_val all → val
  NihSource src(o);
  ASSERT_EQ(src.samples().size(), 5u);  // the 6th image is in neither list
  EXPECT_EQ(src.split("test").size(), 2u);
  EXPECT_EQ(src.split("val").size(), 3u);
  o.split_percent = {100, 0, 0};
  EXPECT_EQ(NihSource(o).split("train").size(), 3u);
}

TEST(NihSource, Errors) {
  TempDir d;
  NihSource::Options o;
  o.common.root = (d / "nope").string();
  expect_error_contains([&] { NihSource s(o); }, {"nih", "nope", "does not exist"});
  o.common.root = d.path().string();
  expect_error_contains([&] { NihSource s(o); }, {"neither labels.csv nor Data_Entry_2017"});

  std::filesystem::create_directories(d / "images");
  daug::testing::write_text(d / "labels.csv", "image,split\nx.png,train\n");
  expect_error_contains([&] { NihSource s(o); }, {"labels.csv", "missing column 'patient_id'"});

  daug::testing::write_text(d / "labels.csv", "x,y\n1,2\n");
  expect_error_contains([&] { NihSource s(o); }, {"not an NIH label file", "Finding Labels"});

  std::filesystem::remove(d / "labels.csv");
  daug::testing::write_text(d / "Data_Entry_2017.csv",
                            "Image Index,Finding Labels,Patient ID\na.png,Effusion|Nodule,1\nb.png,Pneumonitis,2\n");
  expect_error_contains([&] { NihSource s(o); }, {"Data_Entry_2017.csv:3", "unknown NIH label 'Pneumonitis'"});

  // missing images: skipped (counted) by default, an error with strict
  daug::testing::write_text(d / "Data_Entry_2017.csv", "Image Index,Finding Labels,Patient ID\na.png,Effusion,1\n");
  expect_error_contains([&] { NihSource s(o); }, {"no images left", "1 missing"});
  o.common.strict = true;
  expect_error_contains([&] { NihSource s(o); }, {"1 image files are missing", "a.png"});

  o.common.strict = false;
  o.split_percent = {50, 50};
  expect_error_contains([&] { NihSource s(o); }, {"split_percent", "3 values"});
}

TEST(NihSource, LimitsForSmokeRuns) {
  auto o = sample_options();
  o.common.max_per_split = 5;
  NihSource src(o);
  EXPECT_EQ(src.samples().size(), 15u);
  EXPECT_EQ(src.split("val").size(), 5u);
  o.common.max_per_split = 0;
  o.common.limit = 7;
  EXPECT_EQ(NihSource(o).samples().size(), 7u);
}

TEST(NihReport, EveryTemplateNamesItsFindingAndChoiceIsDeterministic) {
  const std::map<std::string, std::vector<std::string>> keywords = {
      {"Atelectasis", {"atelectasis"}},  {"Cardiomegaly", {"cardiomegaly", "heart", "cardiac"}},
      {"Consolidation", {"consolidation"}}, {"Edema", {"edema"}},
      {"Effusion", {"effusion"}},        {"Emphysema", {"emphysema"}},
      {"Fibrosis", {"fibrosis", "fibrotic"}}, {"Hernia", {"hernia"}},
      {"Infiltration", {"infiltrat"}},   {"Mass", {"mass"}},
      {"Nodule", {"nodul"}},             {"Pleural_Thickening", {"pleural thickening"}},
      {"Pneumonia", {"pneumonia"}},      {"Pneumothorax", {"pneumothorax"}}};
  for (const auto& [finding, keys] : keywords) {
    std::set<std::string> variants;
    for (int i = 0; i < 200; ++i) {
      std::string id = "img" + std::to_string(i);
      std::string r = daug::plugins::nih_report(id, {finding});
      std::string lower = r;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      bool hit = false;
      for (const auto& k : keys) hit |= lower.find(k) != std::string::npos;
      EXPECT_TRUE(hit) << finding << ": " << r;
      EXPECT_EQ(r, daug::plugins::nih_report(id, {finding}));
      variants.insert(r);
    }
    EXPECT_GE(variants.size(), 4u) << finding;  // varied phrasing
  }
  std::set<std::string> normal;
  for (int i = 0; i < 100; ++i) normal.insert(daug::plugins::nih_report("n" + std::to_string(i), {"No Finding"}));
  EXPECT_GE(normal.size(), 4u);
  for (const auto& r : normal) EXPECT_TRUE(r.find("No ") != std::string::npos || r.find("Normal") != std::string::npos ||
                                           r.find("normal") != std::string::npos) << r;
  EXPECT_EQ(daug::plugins::nih_to_chexpert("Hernia"), -1);
  EXPECT_EQ(daug::plugins::nih_to_chexpert("Nodule"), daug::chexpert_index("Lung Lesion"));
  EXPECT_EQ(daug::plugins::nih_to_chexpert("nodule"), -2);
}

TEST(NihBoxes, SampleWithoutBoxesKeepsItsFingerprintInputs) {
  // The sample has no boxes.csv: the label files (whose contents enter Source::fingerprint()) are labels.csv alone,
  // as before the boxes option, so the fingerprint and the data part of every cache key stay the same. The value is
  // printed for a before/after comparison (it includes image mtimes, so it is not a constant of the repository).
  NihSource src(sample_options());
  ASSERT_EQ(src.label_files().size(), 1u);
  EXPECT_EQ(src.label_files()[0], std::filesystem::path(kSample) / "labels.csv");
  std::printf("nih sample fingerprint: %s\n", src.fingerprint().c_str());
}

TEST(NihBoxes, SampleHasNoBoxes) {
  NihSource src(sample_options());
  ASSERT_NE(daug::localization_truth(src), nullptr);
  EXPECT_TRUE(daug::localization_truth(src)->truth_boxes().empty());
}

const std::string kDev = std::string(DAUG_SOURCE_DIR) + "/examples/data/nih-bbox-dev";

TEST(NihBoxes, DevBoxesMatchTheirReadme) {
  NihSource::Options o;
  o.common.root = kDev;
  NihSource src(o);
  EXPECT_EQ(src.samples().size(), 420u);
  const auto* truth = daug::localization_truth(src);
  ASSERT_NE(truth, nullptr);
  const auto& b = truth->truth_boxes();
  ASSERT_EQ(b.size(), 477u);
  std::map<std::string, int> per;
  std::set<std::string> images;
  for (const auto& x : b) {
    ++per[x.label];
    images.insert(x.id);
    EXPECT_EQ(x.image_w, 256);
    EXPECT_EQ(x.image_h, 256);
  }
  // README: "Boxes per label: Atelectasis 87, Cardiomegaly 70, Effusion 74, Infiltration 60, Mass 37, Nodule 38,
  // Pneumonia 64, Pneumothorax 47"; every one of the 420 images has a box.
  EXPECT_EQ(per, (std::map<std::string, int>{{"Atelectasis", 87},
                                             {"Cardiomegaly", 70},
                                             {"Effusion", 74},
                                             {"Infiltration", 60},
                                             {"Mass", 37},
                                             {"Nodule", 38},
                                             {"Pneumonia", 64},
                                             {"Pneumothorax", 47}}));
  EXPECT_EQ(images.size(), 420u);
  // first row of boxes.csv: 00000072_000.png,Atelectasis,89.125925925926,141.95132275132275,31.9661375661375,...
  EXPECT_EQ(b[0].id, "00000072_000");
  EXPECT_DOUBLE_EQ(b[0].x, 89.125925925926);
  EXPECT_DOUBLE_EQ(b[0].h, 20.5883597883598);
  // the boxes file is a label file: its contents enter the fingerprint
  ASSERT_EQ(src.label_files().size(), 2u);
  EXPECT_EQ(src.label_files()[1], std::filesystem::path(kDev) / "boxes.csv");
  EXPECT_TRUE(truth->truth_mask(b[0].id).empty());
  // limits keep only the boxes of the images kept
  o.common.limit = 3;
  NihSource few(o);
  std::set<std::string> kept;
  for (const auto& s : few.samples()) kept.insert(s.id);
  EXPECT_FALSE(few.truth_boxes().empty());
  for (const auto& x : few.truth_boxes()) EXPECT_TRUE(kept.count(x.id)) << x.id;
}

TEST(NihBoxes, BadRowsNameFileAndLine) {
  TempDir tmp;
  NihSource::Options o;
  o.common.root = kDev;
  const std::string head = "image,label,x,y,w,h\n00000072_000.png,Atelectasis,1,2,3,4\n";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"nope.png,Atelectasis,1,2,3,4", "bad.csv:3: image 'nope.png' is not in"},
      {"00000072_000.png,Mass,1,2,3,4", "bad.csv:3: label 'Mass' is not positive for image '00000072_000'"},
      {"00000072_000.png,Atelectasis,x,2,3,4", "bad.csv:3: column 'x' must be a number"},
      {"00000072_000.png,Atelectasis,nan,2,3,4", "bad.csv:3: column 'x' must be a finite number"},
      {"00000072_000.png,Atelectasis,250,2,10,4",
       "bad.csv:3: box x=250 y=2 w=10 h=4 must have w, h > 0 and lie inside"},
      {"00000072_000.png,Atelectasis,1,2,0,4", "bad.csv:3: box x=1 y=2 w=0"}};
  for (const auto& [row, want] : bad) {
    daug::testing::write_text(tmp / "bad.csv", head + row + "\n");
    o.boxes = (tmp / "bad.csv").string();
    expect_error_contains([&] { NihSource s(o); }, {want});
  }
  o.boxes = (tmp / "missing.csv").string();
  expect_error_contains([&] { NihSource s(o); }, {"missing.csv' does not exist"});
}

TEST(NihBoxes, TheBoxesFileEntersTheFingerprint) {
  // Same labels.csv and images; boxes.csv rewritten with one digit changed, same size and mtime: only its contents
  // differ, and the fingerprint must see it.
  TempDir tmp;
  std::filesystem::copy_file(std::filesystem::path(kDev) / "labels.csv", tmp / "labels.csv");
  NihSource::Options o;
  o.common.root = tmp.path().string();
  o.images_dir = kDev + "/images";
  daug::testing::write_text(tmp / "boxes.csv", "image,label,x,y,w,h\n00000072_000.png,Atelectasis,1,2,3,4\n");
  const auto mtime = std::filesystem::last_write_time(tmp / "boxes.csv");
  const std::string fa = NihSource(o).fingerprint();
  EXPECT_EQ(NihSource(o).fingerprint(), fa);
  daug::testing::write_text(tmp / "boxes.csv", "image,label,x,y,w,h\n00000072_000.png,Atelectasis,1,2,3,5\n");
  std::filesystem::last_write_time(tmp / "boxes.csv", mtime);
  NihSource b(o);
  EXPECT_DOUBLE_EQ(b.truth_boxes().at(0).h, 5);
  EXPECT_NE(b.fingerprint(), fa);
}

}  // namespace
