// `mimic_cxr` Source plugin: MIMIC-CXR-JPG v2.0.0 images and labels, MIMIC-CXR reports (Johnson et al. 2019).
#include "mimic_source.h"

#include <daug/build_context.h>
#include <daug/data/csv.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/register.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

namespace daug::plugins {

void MimicSourceOptions::visit(OptionVisitor& v) {
  common.visit(v);
  labels.visit(v);
  v("labeler", labeler, "label file mimic-cxr-2.0.0-<labeler>.csv (one row per study)",
    Check::choice({"chexpert", "negbio"}));
  v("labels_csv", labels_csv,
    "label CSV overriding `labeler` (columns subject_id, study_id and the 14 classes), relative to root; e.g. "
    "VisualCheXbert labels as DAug uses");
  v("split_csv", split_csv, "split CSV (dicom_id, study_id, subject_id, split), relative to root",
    Check::required_non_empty());
  v("metadata_csv", metadata_csv, "metadata CSV (dicom_id, ViewPosition, ...), relative to root",
    Check::required_non_empty());
  v("images_dir", images_dir, "folder holding pXX/pSUBJECT/sSTUDY/DICOM.jpg, relative to root",
    Check::required_non_empty());
  v("image_format", image_format,
    "jpg (unset): MIMIC-CXR-JPG's <images_dir>/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg; dicom: the MIMIC-CXR DICOM "
    "release's <dicom_id>.dcm in the same tree (decoded through DCMTK: libs/data dicom.h)",
    Check::choice({"jpg", "dicom"}));
  v("views", views, "keep only images with these ViewPosition values (released frontal set: PA, and AP = 'AP' or "
    "'AP AXIAL', datasets/mimic.py); empty = all views");
  v("items", items,
    "image: one item per image (DAug by_view); study: one item per study, the first image by `views` order",
    Check::choice({"image", "study"}));
  v("reports", reports,
    "required: a missing/unreadable report file is a DataError; optional: empty report, counted in the log; none: "
    "do not read reports",
    Check::choice({"required", "optional", "none"}));
  v("reports_root", reports_root,
    "folder holding files/pXX/pSUBJECT/sSTUDY.txt (the MIMIC-CXR report release), relative to root; \"\" = root");
  v("report_text", report_text,
    "findings_impression: FINDINGS + IMPRESSION when both exist, else whichever exists (default, REFERENCE.md §11.18); "
    "impression: MIT-LCP priority impression > findings; both fall back to last paragraph, comparison, full text",
    Check::choice({"findings_impression", "impression"}));
}

std::string mimic_study_dir(const std::string& subject, const std::string& study) {
  return fmt::format("p{}/p{}/s{}", subject.substr(0, 2), subject, study);
}

namespace {

std::string strip_prefix(std::string s, char p) {
  if (!s.empty() && s[0] == p) s.erase(0, 1);
  // "50414267.0" from a float-typed export
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.erase(s.size() - 2);
  return s;
}

void check_id(const data::CsvTable& t, size_t r, size_t c, const std::string& v) {
  if (v.empty() || !std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    throw DataError(fmt::format("{}:{}: column '{}': expected a numeric id, but found '{}'", t.name(), t.line_of(r),
                                t.header()[c], t.at(r, c)));
}

}  // namespace

MimicSource::MimicSource(Options o) : OptionsListSource(std::move(o), "mimic_cxr") {
  const auto uncertain = opts_.labels.uncertain_policy();
  const auto blank = opts_.labels.blank_policy();
  const std::filesystem::path& root = root_;
  const std::string source = fmt::format("mimic_cxr({})", root.string());

  // Labels: one row per study.
  const std::string labels_file = opts_.labels_csv.empty()
                                      ? fmt::format("mimic-cxr-2.0.0-{}.csv", opts_.labeler)
                                      : opts_.labels_csv;
  std::unordered_map<std::string, std::vector<float>> study_labels;
  {
    label_files_.push_back(data::resolve_under(root, labels_file));
    const data::CsvTable t = data::CsvTable::read(label_files_.back());
    const size_t c_subject = t.column("subject_id"), c_study = t.column("study_id");
    const auto cols = data::chexpert_columns(t);
    for (size_t r = 0; r < t.rows(); ++r) {
      std::string study = strip_prefix(t.at(r, c_study), 's');
      check_id(t, r, c_study, study);
      (void)c_subject;
      study_labels[study] = data::read_chexpert_labels(t, r, cols, uncertain, blank);
    }
  }
  // View positions.
  std::unordered_map<std::string, std::string> view_of;
  const bool need_metadata = !opts_.views.empty() || opts_.items == "study";
  if (need_metadata) {
    label_files_.push_back(data::resolve_under(root, opts_.metadata_csv));
    const data::CsvTable t = data::CsvTable::read(label_files_.back());
    const size_t c_dicom = t.column("dicom_id"), c_view = t.column("ViewPosition");
    for (size_t r = 0; r < t.rows(); ++r) view_of[t.at(r, c_dicom)] = t.at(r, c_view);
  }
  // Images, in split-file order.
  label_files_.push_back(data::resolve_under(root, opts_.split_csv));
  const data::CsvTable t = data::CsvTable::read(label_files_.back());
  const size_t c_dicom = t.column("dicom_id"), c_study = t.column("study_id"), c_subject = t.column("subject_id"),
               c_split = t.column("split");
  const std::filesystem::path images = data::resolve_under(root, opts_.images_dir);
  const std::string extension = opts_.image_format.value_or("jpg") == "dicom" ? ".dcm" : ".jpg";
  data::ProblemList no_labels("images of studies without a row in " + labels_file);
  data::ProblemList no_meta("images without a row in " + opts_.metadata_csv);
  size_t other_view = 0;
  std::vector<Sample> all;
  std::vector<int> view_rank;  // index of the view in opts_.views (study items pick the lowest)
  for (size_t r = 0; r < t.rows(); ++r) {
    const std::string& dicom = t.at(r, c_dicom);
    DAUG_CHECK_AS(DataError, !dicom.empty(), t.name(), ":", t.line_of(r), ": empty dicom_id");
    std::string study = strip_prefix(t.at(r, c_study), 's'), subject = strip_prefix(t.at(r, c_subject), 'p');
    check_id(t, r, c_study, study);
    check_id(t, r, c_subject, subject);
    int rank = 0;
    if (need_metadata) {
      auto it = view_of.find(dicom);
      if (it == view_of.end()) {
        no_meta.add(dicom);
        continue;
      }
      if (!opts_.views.empty()) {
        auto v = std::find(opts_.views.begin(), opts_.views.end(), it->second);
        if (v == opts_.views.end()) {
          ++other_view;
          continue;
        }
        rank = static_cast<int>(v - opts_.views.begin());
      }
    }
    auto lab = study_labels.find(study);
    if (lab == study_labels.end()) {
      no_labels.add(fmt::format("s{}", study));
      continue;
    }
    Sample s;
    s.id = dicom;
    s.study = study;
    s.patient = subject;
    s.split = data::normalize_split(t, r, c_split);
    s.labels = lab->second;
    s.image = images / (mimic_study_dir(subject, study) + "/" + dicom + extension);
    all.push_back(std::move(s));
    view_rank.push_back(rank);
  }
  if (!opts_.views.empty())
    log::info("{}: left out {} images whose ViewPosition is not one of [{}]", source, other_view,
              fmt::join(opts_.views, ", "));
  if (!no_meta.empty()) log::warn("{}: skipped {}", source, no_meta.summary());
  if (!no_labels.empty()) log::warn("{}: skipped {}", source, no_labels.summary());

  if (opts_.items == "study") {
    std::unordered_map<std::string, size_t> best;  // study → index into all
    std::vector<std::string> order;
    for (size_t i = 0; i < all.size(); ++i) {
      auto it = best.find(all[i].study);
      if (it == best.end()) {
        best[all[i].study] = i;
        order.push_back(all[i].study);
      } else if (view_rank[i] < view_rank[it->second]) {
        it->second = i;
      }
    }
    std::vector<Sample> picked;
    for (const auto& st : order) picked.push_back(std::move(all[best[st]]));
    log::info("{}: items = study: {} studies from {} images", source, picked.size(), all.size());
    all = std::move(picked);
  }
  samples_ = std::move(all);
  data::finalize_samples(samples_, opts_.common, source);

  // Reports, once per study.
  if (opts_.reports != "none") {
    const std::filesystem::path rroot =
        opts_.reports_root.empty() ? root : data::resolve_under(root, opts_.reports_root);
    const auto mode = opts_.report_text == "impression" ? mimic::ReportText::impression
                                                           : mimic::ReportText::findings_impression;
    std::unordered_map<std::string, std::string> text_of;
    std::map<std::string, size_t> used_counts;
    data::ProblemList missing("report files are missing or unreadable");
    data::TextCheck utf8(source + " reports", opts_.common.strict);  // offsets are in the report file
    for (auto& s : samples_) {
      auto it = text_of.find(s.study);
      if (it == text_of.end()) {
        const auto path = rroot / "files" / (mimic_study_dir(s.patient, s.study) + ".txt");
        std::error_code ec;
        const bool exists = std::filesystem::is_regular_file(path, ec);
        std::ifstream f;
        if (exists) f.open(path, std::ios::binary);
        std::string text;
        if (f) {
          std::ostringstream ss;
          ss << f.rdbuf();
          text = ss.str();
        }
        if (!exists || !f || f.bad()) {
          missing.add(path.string());
          text.clear();
        } else {
          std::string used;
          text = mimic::report_text(utf8(std::move(text), path.string()), mode, &used);
          used_counts[used]++;
        }
        it = text_of.emplace(s.study, std::move(text)).first;
      }
      s.report = it->second;
    }
    if (!missing.empty()) {
      if (opts_.reports == "required")
        throw DataError(fmt::format("{}: {} (under {}; set reports = \"optional\" to allow empty reports, or "
                                    "reports_root to the MIMIC-CXR report folder)",
                                    source, missing.summary(), rroot.string()));
      log::warn("{}: {} (reports = optional: left empty)", source, missing.summary());
    }
    utf8.report();
    std::vector<std::string> parts;
    for (const auto& [k, n] : used_counts) parts.push_back(fmt::format("{} {}", k, n));
    log::info("{}: report text per study from: {}", source, fmt::join(parts, ", "));
  }
}

std::string MimicSource::describe() const {
  return fmt::format("mimic_cxr(root={}, labels={}, {}views=[{}], items={}, report_text={}, {} images: {})",
                     opts_.common.root, opts_.labels_csv.empty() ? opts_.labeler : opts_.labels_csv,
                     opts_.image_format.value_or("jpg") == "dicom" ? "images=dicom, " : "", fmt::join(opts_.views, ","),
                     opts_.items, opts_.report_text, samples_.size(), data::split_summary(samples_));
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Source, "mimic_cxr", daug::plugins::MimicSource,
                     "MIMIC-CXR-JPG v2.0.0 (chexpert/negbio, split, metadata CSVs) with MIMIC-CXR report sections; "
                     "or MIMIC-CXR's DICOM files (image_format = \"dicom\")")
