// The chexpert source on a fixture tree with CheXpert's real file names and CSV columns.
#include "chexpert_source.h"

#include <daug/data/image.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

using daug::plugins::ChexpertSource;
using daug::testing::expect_error_contains;
using daug::testing::TempDir;

const char* kHeader =
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,"
    "Support Devices\n";

struct Fixture {
  TempDir d;
  std::filesystem::path root;
  Fixture() {
    root = d / "CheXpert-v1.0-small";
    for (const char* p : {"train/patient00001/study1/view1_frontal.jpg", "train/patient00002/study2/view1_frontal.jpg",
                          "train/patient00002/study2/view2_lateral.jpg", "train/patient00003/study1/view1_frontal.jpg",
                          "valid/patient64541/study1/view1_frontal.jpg"}) {
      std::filesystem::create_directories((root / p).parent_path());
      daug::data::save_png(root / p, at::full({1, 4, 4}, 0.25f));  // content is PNG; format is read from the bytes
    }
    daug::testing::write_text(
        root / "train.csv",
        std::string(kHeader) +
            // the first two rows of CheXpert-v1.0-small/train.csv
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0\n"
            "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,\n"
            "CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg,Female,83,Lateral,,,,,1.0,,,-1.0,,,,,,1.0,\n"
            "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,41,Frontal,PA,,,,,,1.0,,,,0.0,,,,\n");
    daug::testing::write_text(
        root / "valid.csv",
        std::string(kHeader) +
            "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,0.0,1.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n");
  }
  ChexpertSource::Options options() const {
    ChexpertSource::Options o;
    o.common.root = root.string();
    return o;
  }
};

int c(const char* name) { return daug::chexpert_index(name); }

TEST(ChexpertSource, FrontalOnlyDefaultsAndIds) {
  Fixture f;
  ChexpertSource src(f.options());
  const auto& s = src.samples();
  ASSERT_EQ(s.size(), 4u);  // the lateral view is left out
  EXPECT_EQ(src.split("train").size(), 3u);
  EXPECT_EQ(src.split("val").size(), 1u);
  EXPECT_EQ(s[0].id, "patient00001_study1_view1_frontal");
  EXPECT_EQ(s[0].study, "patient00001_study1");
  EXPECT_EQ(s[0].patient, "patient00001");
  EXPECT_EQ(s[0].image, f.root / "train/patient00001/study1/view1_frontal.jpg");
  EXPECT_TRUE(s[0].report.empty());
  // row 1: No Finding 1, Pneumothorax 0.0, Support Devices 1, rest blank → 0
  EXPECT_EQ(s[0].labels[c("No Finding")], 1.0f);
  EXPECT_EQ(s[0].labels[c("Support Devices")], 1.0f);
  EXPECT_EQ(s[0].labels[c("Pneumothorax")], 0.0f);
  EXPECT_EQ(s[0].labels[c("Cardiomegaly")], 0.0f);
  // row 2: Cardiomegaly -1 (→ 0 with U-Zeros), Lung Opacity 1, Fracture 1
  EXPECT_EQ(s[1].labels[c("Cardiomegaly")], 0.0f);
  EXPECT_EQ(s[1].labels[c("Lung Opacity")], 1.0f);
  EXPECT_EQ(s[1].labels[c("Fracture")], 1.0f);
  EXPECT_EQ(s[3].split, "val");
  EXPECT_EQ(s[3].labels[c("Enlarged Cardiomediastinum")], 1.0f);
}

TEST(ChexpertSource, UncertainAndBlankPolicies) {
  Fixture f;
  auto o = f.options();
  o.labels.uncertain = "ones";
  o.labels.blank = "ignore";
  ChexpertSource src(o);
  const auto& s = src.samples();
  EXPECT_EQ(s[1].labels[c("Cardiomegaly")], 1.0f);     // -1 → 1 (U-Ones)
  EXPECT_EQ(s[1].labels[c("Pleural Effusion")], 1.0f);  // -1.0
  EXPECT_TRUE(std::isnan(s[0].labels[c("Edema")]));     // blank → NaN
  EXPECT_EQ(s[0].labels[c("Pneumothorax")], 0.0f);      // explicit 0.0 stays 0
  o.labels.uncertain = "ignore";
  ChexpertSource ign(o);
  EXPECT_TRUE(std::isnan(ign.samples()[1].labels[c("Atelectasis")]));
}

TEST(ChexpertSource, LateralViewsAndFilters) {
  Fixture f;
  auto o = f.options();
  o.frontal_only = false;
  EXPECT_EQ(ChexpertSource(o).samples().size(), 5u);
  o.frontal_only = true;
  o.views = {"PA"};
  ChexpertSource pa(o);
  ASSERT_EQ(pa.samples().size(), 1u);
  EXPECT_EQ(pa.samples()[0].patient, "patient00003");
  o.views = {};
  o.val_csv = "";
  EXPECT_EQ(ChexpertSource(o).samples().size(), 3u);
  // explicit image_root; Path is then taken relative to it
  o.image_root = f.d.path().string();
  EXPECT_EQ(ChexpertSource(o).samples().size(), 3u);
  o.image_root = f.root.string();
  expect_error_contains([&] { ChexpertSource s(o); }, {"no images left", "3 missing"});
}

TEST(ChexpertSource, Errors) {
  Fixture f;
  auto o = f.options();
  o.test_csv = "test.csv";
  expect_error_contains([&] { ChexpertSource s(o); }, {"test.csv", "does not exist"});
  daug::testing::write_text(f.root / "bad.csv", "Path,Sex,Age,AP/PA,No Finding\nx.jpg,Male,1,AP,1\n");
  o.test_csv = "bad.csv";
  expect_error_contains([&] { ChexpertSource s(o); }, {"bad.csv", "missing label columns", "Cardiomegaly"});
  daug::testing::write_text(
      f.root / "bad2.csv",
      std::string(kHeader) +
          "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Oblique,AP,1.0,,,,,,,,,,,,,\n");
  o.test_csv = "bad2.csv";
  expect_error_contains([&] { ChexpertSource s(o); }, {"bad2.csv:2", "Frontal/Lateral", "'Oblique'"});
  o.test_csv = "";
  o.train_csv = "";
  o.val_csv = "";
  expect_error_contains([&] { ChexpertSource s(o); }, {"train_csv, val_csv, test_csv"});
  auto o2 = f.options();
  o2.common.strict = true;
  std::filesystem::remove(f.root / "valid/patient64541/study1/view1_frontal.jpg");
  expect_error_contains([&] { ChexpertSource s(o2); }, {"1 image files are missing", "patient64541"});
}

}  // namespace
