// The mimic_cxr source on a fixture tree with MIMIC-CXR-JPG's real layout, file names and CSV columns, and the
// MIT-LCP section-parser semantics.
#include "mimic_source.h"

#include <daug/data/image.h>
#include <daug/error.h>

#include "test_support.h"
#ifdef DAUG_TEST_DICOM
#include "dicom_file.h"
#endif

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

using daug::plugins::MimicSource;
using daug::testing::expect_error_contains;
using daug::testing::TempDir;
using daug::testing::write_text;
namespace mimic = daug::plugins::mimic;

// The first report of MIMIC-CXR's documentation example (p10000032/s50414267), lines prefixed by a space.
const char* kReport1 =
    "                                 FINAL REPORT\n"
    " EXAMINATION:  CHEST (PA AND LAT)\n"
    " \n"
    " INDICATION:  ___F with new onset ascites  // eval for infection\n"
    " \n"
    " TECHNIQUE:  Chest PA and lateral\n"
    " \n"
    " COMPARISON:  None.\n"
    " \n"
    " FINDINGS: \n"
    " \n"
    " There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral\n"
    " nodular opacities that most likely represent nipple shadows. The\n"
    " cardiomediastinal silhouette is normal.\n"
    " \n"
    " IMPRESSION: \n"
    " \n"
    " No acute cardiopulmonary process.\n";

const char* kReport2 =  // empty FINDINGS section is dropped; impression only
    "                                 FINAL REPORT\n"
    " INDICATION:  Cough.\n"
    " \n"
    " FINDINGS: \n"
    " \n"
    " IMPRESSION:  Small left pleural effusion with adjacent atelectasis.\n";

const char* kReport3 =  // no sections: last paragraph
    "                                 FINAL REPORT\n"
    " CHEST RADIOGRAPH PERFORMED ON ___\n"
    " \n"
    " Heart size is normal.  No pneumonia.\n";

const char* kReport4 =  // typo header and a later CONCLUSION: the last impression wins
    "                                 FINAL REPORT\n"
    " FINDINGS:  Lungs are clear.\n"
    " \n"
    " IMPRESSON:  First impression.\n"
    " \n"
    " CONCLUSION:  Final impression.\n";

const char* kReport5 = "\n FINDINGS AND IMPRESSION:  Stable cardiomegaly.\n";
const char* kReport6 = "\n FINDINGS:  Right lower lobe opacity.\n";

const char* kChexpertHeader =
    "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,"
    "Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices\n";

struct Image {
  const char* subject;
  const char* study;
  const char* dicom;
  const char* view;
  const char* split;
};

const Image kImages[] = {
    {"10000032", "50414267", "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "PA", "train"},
    {"10000032", "50414267", "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "LATERAL", "train"},
    {"10000032", "53189527", "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "PA", "train"},
    {"10000032", "53189527", "e084de3b-be89b11e-20fe3f9f-9c8d8dfe-4cfd202c", "LATERAL", "train"},
    {"10000032", "53911762", "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714", "AP", "train"},
    {"10000032", "53911762", "fffabebf-74fd3a1f-673b6b41-96ec0ac9-2ab69818", "AP AXIAL", "train"},
    {"10000032", "56699142", "ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c", "AP", "train"},
    {"11000011", "51029426", "aaaaaaaa-11111111-22222222-33333333-44444444", "AP", "validate"},
    {"19999987", "58971208", "bbbbbbbb-11111111-22222222-33333333-44444444", "AP", "test"},
    {"19999987", "59999999", "cccccccc-11111111-22222222-33333333-44444444", "PA", "test"},  // no label row
};

struct Fixture {
  TempDir d;
  Fixture() {
    std::string split = "dicom_id,study_id,subject_id,split\n";
    std::string meta =
        "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
        "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
        "PatientOrientationCodeSequence_CodeMeaning\n";
    for (const auto& im : kImages) {
      auto dir = d / "files" / (std::string("p") + std::string(im.subject).substr(0, 2)) / (std::string("p") + im.subject) /
                 (std::string("s") + im.study);
      std::filesystem::create_directories(dir);
      daug::data::save_png(dir / (std::string(im.dicom) + ".jpg"), at::full({1, 4, 4}, 0.5f));
      split += fmt(im.dicom, im.study, im.subject, im.split);
      meta += std::string(im.dicom) + "," + im.subject + "," + im.study + ",CHEST (PA AND LAT)," + im.view +
              ",3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect\n";
    }
    write_text(d / "mimic-cxr-2.0.0-split.csv", split);
    write_text(d / "mimic-cxr-2.0.0-metadata.csv", meta);
    // alphabetical class columns; values 1.0/0.0/-1.0/blank
    write_text(d / "mimic-cxr-2.0.0-chexpert.csv",
               std::string(kChexpertHeader) +
                   "10000032,50414267,,,,,,,,,1.0,,,,,\n"
                   "10000032,53189527,-1.0,,,,,,,,,1.0,,,,\n"
                   "10000032,53911762,,,,,,,,,1.0,,,,,\n"
                   "10000032,56699142,,,,,,,,,,,,,,\n"
                   "11000011,51029426,,1.0,,,,,,,,,,,,\n"
                   "19999987,58971208,,,,,,,,1.0,,,,1.0,,\n");
    write_text(d / "mimic-cxr-2.0.0-negbio.csv",
               std::string(kChexpertHeader) +
                   "10000032,50414267,,,,,,,,,1.0,,,,,\n"
                   "10000032,53189527,1.0,,,,,,,,,1.0,,,,\n"
                   "10000032,53911762,,,,,,,,,1.0,,,,,\n"
                   "10000032,56699142,,,,,,,,,,,,,,1.0\n"
                   "11000011,51029426,,1.0,,,,,,,,,,,,\n"
                   "19999987,58971208,,,,,,,,1.0,,,,1.0,,\n");
    write_text(d / "files/p10/p10000032/s50414267.txt", kReport1);
    write_text(d / "files/p10/p10000032/s53189527.txt", kReport2);
    write_text(d / "files/p10/p10000032/s53911762.txt", kReport3);
    write_text(d / "files/p10/p10000032/s56699142.txt", kReport4);
    write_text(d / "files/p11/p11000011/s51029426.txt", kReport5);
    write_text(d / "files/p19/p19999987/s58971208.txt", kReport6);
  }
  static std::string fmt(const char* dicom, const char* study, const char* subject, const char* split) {
    return std::string(dicom) + "," + study + "," + subject + "," + split + "\n";
  }
  MimicSource::Options options() const {
    MimicSource::Options o;
    o.common.root = d.path().string();
    return o;
  }
};

const daug::Sample& by_id(const MimicSource& s, const std::string& id) {
  for (const auto& x : s.samples())
    if (x.id == id) return x;
  throw std::runtime_error("no sample " + id);
}

int c(const char* n) { return daug::chexpert_index(n); }

TEST(MimicSource, ImagesViewsSplitsLabels) {
  Fixture f;
  MimicSource src(f.options());
  ASSERT_EQ(src.samples().size(), 7u);  // 2 laterals left out, 1 study without labels skipped
  EXPECT_EQ(src.split("train").size(), 5u);
  EXPECT_EQ(src.split("val").size(), 1u);  // "validate" → val
  EXPECT_EQ(src.split("test").size(), 1u);
  const auto& a = by_id(src, "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014");
  EXPECT_EQ(a.image, f.d / "files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg");
  EXPECT_EQ(a.study, "50414267");
  EXPECT_EQ(a.patient, "10000032");
  EXPECT_EQ(a.labels[c("No Finding")], 1.0f);
  const auto& b = by_id(src, "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab");
  EXPECT_EQ(b.labels[c("Pleural Effusion")], 1.0f);
  EXPECT_EQ(b.labels[c("Atelectasis")], 0.0f);  // -1 → 0 (U-Zeros default)
  EXPECT_EQ(by_id(src, "bbbbbbbb-11111111-22222222-33333333-44444444").labels[c("Pneumonia")], 1.0f);
  EXPECT_EQ(by_id(src, "aaaaaaaa-11111111-22222222-33333333-44444444").split, "val");
  EXPECT_NE(src.describe().find("7 images: train 5, val 1, test 1"), std::string::npos) << src.describe();

  auto o = f.options();
  EXPECT_EQ(o.views, (std::vector<std::string>{"PA", "AP", "AP AXIAL"}));  // released: AP = 'AP' or 'AP AXIAL'
  o.views = {"PA", "AP"};
  EXPECT_EQ(MimicSource(o).samples().size(), 6u);  // the AP AXIAL image fffabebf… is left out
  o.views = {};
  EXPECT_EQ(MimicSource(o).samples().size(), 9u);
  o.views = {"PA"};
  EXPECT_EQ(MimicSource(o).samples().size(), 2u);
  o = f.options();
  o.labels.uncertain = "ignore";
  EXPECT_TRUE(std::isnan(by_id(MimicSource(o), b.id).labels[c("Atelectasis")]));
  o = f.options();
  o.labeler = "negbio";
  MimicSource nb(o);
  EXPECT_EQ(by_id(nb, b.id).labels[c("Atelectasis")], 1.0f);
  EXPECT_EQ(by_id(nb, "ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c").labels[c("Support Devices")], 1.0f);
}

TEST(MimicSource, StudyItems) {
  Fixture f;
  auto o = f.options();
  o.items = "study";
  MimicSource src(o);
  ASSERT_EQ(src.samples().size(), 6u);
  EXPECT_EQ(src.samples()[0].id, "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014");
  EXPECT_EQ(src.samples()[2].id, "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714");  // first AP of s53911762
  o.views = {"AP", "PA"};
  o.items = "study";
  MimicSource ap_first(o);
  EXPECT_EQ(ap_first.samples().size(), 6u);
}

TEST(MimicSource, DefaultImageFormatKeepsTheEffectiveOptions) {
  // image_format came later: unset (= jpg) must not appear in the effective options, so cache keys of existing
  // configs stay as they were.
  Fixture f;
  auto o = f.options();
  EXPECT_FALSE(o.image_format.has_value());
  EXPECT_EQ(daug::dump_options(o).find("image_format"), std::string::npos) << daug::dump_options(o);
  o.image_format = "dicom";
  EXPECT_NE(daug::dump_options(o).find("image_format = 'dicom'"), std::string::npos) << daug::dump_options(o);
}

#ifdef DAUG_TEST_DICOM
// MIMIC-CXR (not -JPG): files/pXX/pSUBJECT/sSTUDY/<dicom_id>.dcm, MONOCHROME1 as many of its radiographs are.
TEST(MimicSource, DicomLayout) {
  Fixture f;
  daug::testing::DicomSpec spec;
  spec.rows = 3;
  spec.cols = 5;
  spec.photometric = "MONOCHROME1";
  for (int i = 0; i < 15; ++i) spec.bytes.push_back(static_cast<uint8_t>(17 * i));
  for (const auto& im : kImages) {
    const auto dir = f.d / "files" / (std::string("p") + std::string(im.subject).substr(0, 2)) /
                     (std::string("p") + im.subject) / (std::string("s") + im.study);
    if (std::string(im.dicom) == "bbbbbbbb-11111111-22222222-33333333-44444444") continue;  // missing: skipped
    ASSERT_EQ(daug::testing::write_dicom_file(dir / (std::string(im.dicom) + ".dcm"), spec), "");
  }
  auto o = f.options();
  o.image_format = "dicom";
  MimicSource src(o);
  ASSERT_EQ(src.samples().size(), 6u);  // as the JPEG tree, less the image without a .dcm
  const auto& a = by_id(src, "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014");
  EXPECT_EQ(a.image, f.d / "files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.dcm");
  EXPECT_EQ(a.labels[c("No Finding")], 1.0f);
  EXPECT_NE(src.describe().find("images=dicom"), std::string::npos) << src.describe();
  // Read through the loaders every stage uses: 255 - 17 i (MONOCHROME1 inverted), / 255.
  at::Tensor img = daug::data::load_gray(a.image);
  ASSERT_EQ(img.sizes(), (at::IntArrayRef{1, 3, 5}));
  for (int i = 0; i < 15; ++i) EXPECT_FLOAT_EQ(img.flatten()[i].item<float>(), (255 - 17 * i) / 255.0f) << i;
  o.common.strict = true;
  expect_error_contains([&] { MimicSource s(o); }, {"1 image files are missing", "bbbbbbbb", ".dcm"});
}
#endif

TEST(MimicSource, ReportsFromSections) {
  Fixture f;
  MimicSource src(f.options());
  EXPECT_EQ(by_id(src, "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014").report,
            "There is no focal consolidation, pleural effusion or pneumothorax. Bilateral nodular opacities that most "
            "likely represent nipple shadows. The cardiomediastinal silhouette is normal. No acute cardiopulmonary "
            "process.");
  EXPECT_FALSE(by_id(src, "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014").report_generated);
  EXPECT_EQ(by_id(src, "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab").report,
            "Small left pleural effusion with adjacent atelectasis.");
  EXPECT_EQ(by_id(src, "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714").report, "Heart size is normal. No pneumonia.");
  // both images of a study share the report
  EXPECT_EQ(by_id(src, "fffabebf-74fd3a1f-673b6b41-96ec0ac9-2ab69818").report, "Heart size is normal. No pneumonia.");
  EXPECT_EQ(by_id(src, "ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c").report, "Lungs are clear. Final impression.");
  EXPECT_EQ(by_id(src, "aaaaaaaa-11111111-22222222-33333333-44444444").report, "Stable cardiomegaly.");
  EXPECT_EQ(by_id(src, "bbbbbbbb-11111111-22222222-33333333-44444444").report, "Right lower lobe opacity.");
  auto o = f.options();
  o.report_text = "impression";
  MimicSource imp(o);
  EXPECT_EQ(by_id(imp, "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014").report, "No acute cardiopulmonary process.");
  EXPECT_EQ(by_id(imp, "ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c").report, "Final impression.");
  EXPECT_EQ(by_id(imp, "bbbbbbbb-11111111-22222222-33333333-44444444").report, "Right lower lobe opacity.");
  o.reports = "none";
  EXPECT_TRUE(MimicSource(o).samples()[0].report.empty());
}

TEST(MimicSource, InvalidUtf8InAReportFileNamesTheFileAndOffset) {
  Fixture f;
  // A Windows-1252 "°" (0xB0) in the report file, at byte 40 of the file.
  const std::string text = "\n FINDINGS AND IMPRESSION:  Stable at 37\xb0 cardiomegaly.\n";
  ASSERT_EQ(text.find('\xb0'), 40u);
  write_text(f.d / "files/p11/p11000011/s51029426.txt", text);
  MimicSource lenient(f.options());
  EXPECT_EQ(by_id(lenient, "aaaaaaaa-11111111-22222222-33333333-44444444").report,
            "Stable at 37\xEF\xBF\xBD cardiomegaly.");
  auto o = f.options();
  o.common.strict = true;
  expect_error_contains([&] { MimicSource s(o); },
                        {"p11/p11000011/s51029426.txt: invalid UTF-8 at byte offset 40 (bytes b0 20 63 61)"});
}

TEST(MimicSource, MissingReportsAndFiles) {
  Fixture f;
  std::filesystem::remove(f.d / "files/p11/p11000011/s51029426.txt");
  expect_error_contains([&] { MimicSource s(f.options()); },
                        {"1 report files are missing or unreadable", "p11/p11000011/s51029426.txt", "optional"});
  auto o = f.options();
  o.reports = "optional";
  MimicSource opt(o);
  EXPECT_TRUE(by_id(opt, "aaaaaaaa-11111111-22222222-33333333-44444444").report.empty());
  // reports in a separate MIMIC-CXR folder
  o = f.options();
  o.reports_root = (f.d / "elsewhere").string();
  expect_error_contains([&] { MimicSource s(o); }, {"6 report files", "elsewhere"});

  // a missing image: skipped and counted, or an error in strict mode
  std::filesystem::remove(f.d / "files/p19/p19999987/s58971208/bbbbbbbb-11111111-22222222-33333333-44444444.jpg");
  o = f.options();
  o.reports = "optional";
  MimicSource skip(o);
  EXPECT_EQ(skip.samples().size(), 6u);
  expect_error_contains([&] { skip.split("test"); }, {"split 'test'", "no images"});
  o.common.strict = true;
  expect_error_contains([&] { MimicSource s(o); }, {"1 image files are missing", "bbbbbbbb"});
}

TEST(MimicSource, MissingCsvsAndColumns) {
  Fixture f;
  auto o = f.options();
  std::filesystem::rename(f.d / "mimic-cxr-2.0.0-metadata.csv", f.d / "meta.csv");
  expect_error_contains([&] { MimicSource s(o); }, {"mimic-cxr-2.0.0-metadata.csv", "does not exist"});
  o.metadata_csv = "meta.csv";
  EXPECT_EQ(MimicSource(o).samples().size(), 7u);
  write_text(f.d / "mimic-cxr-2.0.0-split.csv", "dicom_id,study_id,subject_id\nx,1,2\n");
  expect_error_contains([&] { MimicSource s(o); }, {"mimic-cxr-2.0.0-split.csv", "missing column 'split'"});
  write_text(f.d / "mimic-cxr-2.0.0-split.csv", "dicom_id,study_id,subject_id,split\nx,abc,2,train\n");
  expect_error_contains([&] { MimicSource s(o); }, {"split.csv:2", "numeric id", "'abc'"});
  write_text(f.d / "mimic-cxr-2.0.0-chexpert.csv", "subject_id,study_id,Atelectasis\n1,2,1.0\n");
  expect_error_contains([&] { MimicSource s(o); }, {"chexpert.csv", "missing label columns", "No Finding"});
}

TEST(MimicReport, SectionParserSemantics) {
  auto s = mimic::split_sections(kReport1);
  EXPECT_EQ(s.names, (std::vector<std::string>{"preamble", "examination", "indication", "technique", "comparison",
                                               "findings", "impression"}));
  EXPECT_EQ(s.last("comparison"), "None.");
  EXPECT_EQ(mimic::normalize_section_name("CONCLUSION"), "impression");
  EXPECT_EQ(mimic::normalize_section_name("FINDINGS AND IMPRESSION"), "impression");
  EXPECT_EQ(mimic::normalize_section_name("IMPRESSON"), "impression");
  EXPECT_EQ(mimic::normalize_section_name("PA AND LATERAL VIEWS OF THE CHEST"), "findings");
  EXPECT_EQ(mimic::normalize_section_name("FINAL ADDENDUM"), "addendum");
  EXPECT_EQ(mimic::normalize_section_name("REASON FOR EXAM"), "indication");
  EXPECT_EQ(mimic::normalize_section_name("WET READ"), "wet read");
  auto s2 = mimic::split_sections(kReport2);
  EXPECT_FALSE(s2.has("findings"));  // empty findings dropped
  auto s3 = mimic::split_sections(kReport3);
  EXPECT_EQ(s3.names, (std::vector<std::string>{"full report", "last_paragraph"}));
  EXPECT_EQ(s3.last("last_paragraph"), "Heart size is normal.  No pneumonia.");
  // a header must start a line with one space and end with ':' + whitespace
  auto s4 = mimic::split_sections("text\nIMPRESSION: not a header\n NOTE:x\n FINDINGS:\tok\n");
  EXPECT_EQ(s4.names, (std::vector<std::string>{"preamble", "findings"}));
  std::string used;
  EXPECT_EQ(mimic::report_text("no sections at all", mimic::ReportText::findings_impression, &used),
            "no sections at all");
  EXPECT_EQ(used, "full_text");
  EXPECT_EQ(mimic::report_text(" x\n COMPARISON: 2010.\n", mimic::ReportText::impression, &used), "2010.");
  EXPECT_EQ(used, "comparison");
  EXPECT_EQ(daug::plugins::mimic_study_dir("10000032", "50414267"), "p10/p10000032/s50414267");
}

}  // namespace
