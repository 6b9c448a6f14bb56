// `nih` Source plugin: NIH ChestX-ray14 (Wang et al., CVPR 2017) with labels mapped to the 14 CheXpert classes
// as in examples/data/nih-cxr14-sample/README.md, and report-style text generated from the labels.
#include "nih_source.h"

#include <daug/build_context.h>
#include <daug/data/csv.h>
#include <daug/data/hash.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/register.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

namespace daug::plugins {

void NihSourceOptions::visit(OptionVisitor& v) {
  common.visit(v);
  v("csv", csv,
    "label CSV, relative to root: the embedded sample's labels.csv (image,patient_id,...,split) or NIH's "
    "Data_Entry_2017*.csv (Image Index, Finding Labels, Patient ID); \"\" = labels.csv if present, else the last "
    "Data_Entry_2017*.csv in root");
  v("images_dir", images_dir, "folder holding the PNG files, relative to root or absolute",
    Check::required_non_empty());
  v("train_val_list", train_val_list,
    "NIH train_val_list.txt (one image name per line), used with a Data_Entry CSV; \"\" = root/train_val_list.txt "
    "if it exists");
  v("test_list", test_list,
    "NIH test_list.txt, used with a Data_Entry CSV; \"\" = root/test_list.txt if it exists");
  v("split_percent", split_percent,
    "train/val/test percentages for the patient-level split used when the CSV has no split column: bucket = "
    "int(first 8 hex digits of SHA-256(patient id), 16) % 100 (the embedded sample's rule); with the NIH lists only "
    "the train:val ratio is used",
    Check::required_non_empty());
  v("views", views, "keep only these view positions (e.g. [\"PA\"]); empty = all views");
  v("generate_reports", generate_reports,
    "generate report-style text from the labels (NIH has no reports; Sample::report_generated is set)");
  v("boxes", boxes,
    "ground-truth boxes CSV (image,label,x,y,w,h in pixels of the 256-px images; label in the NIH spelling and "
    "positive for that image), relative to root or absolute; \"\" = root/boxes.csv if it exists, else none");
}

namespace {

struct NihFinding {
  const char* nih;
  const char* noun;  // for the impression line
  std::vector<const char*> sentences;
};

// Several phrasings per finding, in the style of chest radiograph reports; no laterality is invented.
const std::vector<NihFinding>& findings_table() {
  static const std::vector<NihFinding> t = {
      {"Cardiomegaly", "cardiomegaly",
       {"The heart is enlarged.", "There is cardiomegaly.", "The cardiac silhouette is enlarged.",
        "Moderate enlargement of the cardiac silhouette is noted."}},
      {"Effusion", "pleural effusion",
       {"There is a pleural effusion.", "A pleural effusion is present.",
        "Blunting of the costophrenic angle is consistent with a pleural effusion.",
        "Small pleural effusion is noted."}},
      {"Pleural_Thickening", "pleural thickening",
       {"There is pleural thickening.", "Pleural thickening is noted.",
        "Apical pleural thickening is present.", "Mild pleural thickening, likely chronic."}},
      {"Pneumothorax", "pneumothorax",
       {"There is a pneumothorax.", "A pneumothorax is present.", "A small apical pneumothorax is seen.",
        "Pleural line with absent lung markings beyond it, consistent with pneumothorax."}},
      {"Atelectasis", "atelectasis",
       {"There is atelectasis.", "Subsegmental atelectasis is present.", "Linear opacities consistent with atelectasis.",
        "Basilar atelectasis is noted."}},
      {"Consolidation", "consolidation",
       {"There is a focal consolidation.", "Airspace consolidation is present.",
        "An area of consolidation is seen.", "Dense opacity compatible with consolidation."}},
      {"Pneumonia", "pneumonia",
       {"Findings are concerning for pneumonia.", "Opacity may represent pneumonia.",
        "Pneumonia is suspected in the appropriate clinical setting.", "There is an opacity suspicious for pneumonia."}},
      {"Infiltration", "infiltrate",
       {"There is a pulmonary infiltrate.", "Patchy infiltrates are present.",
        "Hazy opacities suggest infiltration.", "An ill-defined infiltrate is noted."}},
      {"Edema", "pulmonary edema",
       {"There is pulmonary edema.", "Interstitial edema is present.",
        "Vascular congestion with pulmonary edema.", "Findings consistent with mild pulmonary edema."}},
      {"Mass", "pulmonary mass",
       {"There is a pulmonary mass.", "A mass is seen in the lung.", "A rounded opacity is concerning for a mass.",
        "A large lung mass is present."}},
      {"Nodule", "pulmonary nodule",
       {"There is a pulmonary nodule.", "A nodular opacity is noted.", "A small lung nodule is seen.",
        "Nodule is present; further evaluation with CT may be considered."}},
      {"Emphysema", "emphysema",
       {"The lungs are hyperinflated, consistent with emphysema.", "There are emphysematous changes.",
        "Emphysema is present.", "Hyperlucent lungs with flattened diaphragms suggest emphysema."}},
      {"Fibrosis", "pulmonary fibrosis",
       {"There is pulmonary fibrosis.", "Reticular opacities consistent with fibrosis.",
        "Fibrotic changes are present.", "Chronic interstitial fibrosis is noted."}},
      {"Hernia", "hiatal hernia",
       {"There is a hiatal hernia.", "A retrocardiac hiatal hernia is present.", "Hiatal hernia is noted.",
        "A hernia is seen at the hiatus."}},
  };
  return t;
}

const std::vector<const char*> kNormalReports = {
    "No acute cardiopulmonary abnormality.",
    "No acute cardiopulmonary process.",
    "The lungs are clear. No acute cardiopulmonary abnormality.",
    "Heart size is normal. The lungs are clear without focal consolidation, effusion, or pneumothorax.",
    "Normal chest radiograph.",
    "No evidence of acute disease in the chest.",
};

uint64_t pick(const std::string& id, const std::string& key) { return data::fnv1a64(id + "#" + key); }

std::string cap(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::string list_phrase(const std::vector<std::string>& nouns) {
  if (nouns.size() == 1) return nouns[0];
  std::string out;
  for (size_t i = 0; i + 1 < nouns.size(); ++i) out += (i ? ", " : "") + nouns[i];
  return out + " and " + nouns.back();
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

std::set<std::string> read_list(const std::filesystem::path& p) {
  std::ifstream f(p);
  if (!f) throw DataError(fmt::format("nih: cannot read split list '{}'", p.string()));
  std::set<std::string> out;
  std::string line;
  while (std::getline(f, line)) {
    line = trim(line);
    if (!line.empty()) out.insert(line);
  }
  return out;
}

std::string stem_of(const std::string& name) { return std::filesystem::path(name).stem().string(); }

}  // namespace

const std::vector<std::string>& nih_labels() {
  static const std::vector<std::string> l = {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                                             "Effusion",    "Emphysema",    "Fibrosis",      "Hernia",
                                             "Infiltration", "Mass",        "Nodule",        "Pleural_Thickening",
                                             "Pneumonia",   "Pneumothorax", "No Finding"};
  return l;
}

int nih_to_chexpert(const std::string& label) {
  static const std::map<std::string, std::string> m = {
      {"Atelectasis", "Atelectasis"},   {"Cardiomegaly", "Cardiomegaly"},     {"Consolidation", "Consolidation"},
      {"Edema", "Edema"},               {"Effusion", "Pleural Effusion"},     {"Infiltration", "Lung Opacity"},
      {"Mass", "Lung Lesion"},          {"Nodule", "Lung Lesion"},            {"Pleural_Thickening", "Pleural Other"},
      {"Pneumonia", "Pneumonia"},       {"Pneumothorax", "Pneumothorax"},     {"No Finding", "No Finding"}};
  auto it = m.find(label);
  if (it != m.end()) return chexpert_index(it->second);
  if (label == "Emphysema" || label == "Fibrosis" || label == "Hernia") return -1;
  return -2;
}

std::string nih_report(const std::string& id, const std::vector<std::string>& findings) {
  std::set<std::string> pos;
  for (const auto& f : findings)
    if (f != "No Finding") pos.insert(f);
  if (pos.empty()) return kNormalReports[pick(id, "normal") % kNormalReports.size()];
  std::vector<std::string> sentences, nouns;
  for (const auto& f : findings_table()) {
    if (!pos.count(f.nih)) continue;
    sentences.emplace_back(f.sentences[pick(id, f.nih) % f.sentences.size()]);
    nouns.emplace_back(f.noun);
  }
  // Normal structures are mostly left unmentioned, as in real reports; now and then one is.
  if (!pos.count("Cardiomegaly") && pick(id, "heart") % 4 == 0)
    sentences.emplace_back(pick(id, "heart2") % 2 ? "The heart size is normal." : "Cardiac silhouette is within normal limits.");
  if (!pos.count("Effusion") && !pos.count("Pneumothorax") && !pos.count("Pleural_Thickening") &&
      pick(id, "pleura") % 4 == 0)
    sentences.emplace_back("There is no pleural effusion or pneumothorax.");
  std::string text = fmt::format("{}", fmt::join(sentences, " "));
  switch (pick(id, "impression") % 3) {
    case 0: text += " Impression: " + cap(list_phrase(nouns)) + "."; break;
    case 1: text += " Findings compatible with " + list_phrase(nouns) + "."; break;
    default: break;  // findings only
  }
  return text;
}

NihSource::NihSource(Options o) : OptionsListSource(std::move(o), "nih") {
  const std::string& where = where_;
  const std::filesystem::path& root = root_;
  DAUG_CHECK_AS(ConfigError, opts_.split_percent.size() == 3, where,
                ".split_percent must have 3 values (train, val, test), but got ", opts_.split_percent.size());
  int64_t pct_sum = 0;
  for (int64_t p : opts_.split_percent) {
    DAUG_CHECK_AS(ConfigError, p >= 0, where, ".split_percent values must be >= 0, but got ", p);
    pct_sum += p;
  }
  DAUG_CHECK_AS(ConfigError, pct_sum == 100, where, ".split_percent must sum to 100, but sums to ", pct_sum);

  // Which CSV.
  std::filesystem::path csv;
  if (!opts_.csv.empty()) {
    csv = data::resolve_under(root, opts_.csv);
  } else if (std::filesystem::exists(root / "labels.csv")) {
    csv = root / "labels.csv";
  } else {
    std::vector<std::string> entries, seen;
    for (const auto& e : std::filesystem::directory_iterator(root)) {
      std::string name = e.path().filename().string();
      if (seen.size() < 10) seen.push_back(name);
      if (name.rfind("Data_Entry_2017", 0) == 0 && e.path().extension() == ".csv") entries.push_back(name);
    }
    if (entries.empty())
      throw DataError(fmt::format("nih: root '{}' has neither labels.csv nor Data_Entry_2017*.csv (found: {})",
                                  root.string(), seen.empty() ? "nothing" : fmt::format("{}", fmt::join(seen, ", "))));
    std::sort(entries.begin(), entries.end());
    csv = root / entries.back();
  }
  csv_path_ = csv.string();
  label_files_.push_back(csv);
  const data::CsvTable t = data::CsvTable::read(csv);
  const std::filesystem::path images = data::resolve_under(root, opts_.images_dir);
  data::require_directory(images, "nih", "images_dir");

  const bool sample_format = t.has_column("image");
  const bool entry_format = t.has_column("Image Index") && t.has_column("Finding Labels");
  if (!sample_format && !entry_format)
    throw DataError(fmt::format("{}: not an NIH label file: expected the columns image,patient_id,<15 labels>[,split] "
                                "(embedded sample) or 'Image Index','Finding Labels','Patient ID' (Data_Entry_2017); "
                                "columns: {}",
                                csv_path_, fmt::join(t.header(), ", ")));
  const size_t c_image = sample_format ? t.column("image") : t.column("Image Index");
  const size_t c_patient = sample_format ? t.column("patient_id") : t.column("Patient ID");
  const std::string view_col = sample_format ? "view" : "View Position";
  const bool filter_views = !opts_.views.empty();
  const size_t c_view = filter_views ? t.column(view_col) : 0;
  std::vector<size_t> c_labels;
  if (sample_format)
    for (const auto& l : nih_labels()) c_labels.push_back(t.column(l));
  const size_t c_findings = entry_format && !sample_format ? t.column("Finding Labels") : 0;
  const bool has_split = sample_format && t.has_column("split");
  const size_t c_split = has_split ? t.column("split") : 0;

  // Official lists (Data_Entry only).
  std::set<std::string> test_set, train_val_set;
  bool use_lists = false;
  if (!has_split) {
    auto list_path = [&](const std::string& opt, const char* def) {
      if (!opt.empty()) return data::resolve_under(root, opt);
      return root / def;
    };
    auto tl = list_path(opts_.test_list, "test_list.txt");
    auto tvl = list_path(opts_.train_val_list, "train_val_list.txt");
    if (!opts_.test_list.empty() || !opts_.train_val_list.empty() ||
        (std::filesystem::exists(tl) && std::filesystem::exists(tvl))) {
      if (!std::filesystem::exists(tl) || !std::filesystem::exists(tvl))
        throw DataError(fmt::format("nih: split lists need both '{}' and '{}'; missing: {}", tvl.string(), tl.string(),
                                    std::filesystem::exists(tl) ? tvl.string() : tl.string()));
      test_set = read_list(tl);
      train_val_set = read_list(tvl);
      label_files_.push_back(tl);
      label_files_.push_back(tvl);
      use_lists = true;
    }
  }
  const int64_t p_train = opts_.split_percent[0], p_val = opts_.split_percent[1];

  std::map<std::string, std::vector<std::string>> findings_of;  // for the boxes: NIH findings per image id
  std::set<std::string> in_csv;                                 // every image id of the label CSV
  for (size_t r = 0; r < t.rows(); ++r) in_csv.insert(stem_of(t.at(r, c_image)));
  data::ProblemList not_listed("images in neither split list");
  data::TextCheck text(fmt::format("nih({})", csv_path_), opts_.common.strict);
  for (size_t r = 0; r < t.rows(); ++r) {
    if (filter_views &&
        std::find(opts_.views.begin(), opts_.views.end(), t.at(r, c_view)) == opts_.views.end())
      continue;
    Sample s;
    const std::string name = t.at(r, c_image);
    DAUG_CHECK_AS(DataError, !name.empty(), csv_path_, ":", t.line_of(r), ": empty image name");
    s.id = text(stem_of(name), fmt::format("{}:{}: column '{}'", csv_path_, t.line_of(r), t.header()[c_image]));
    s.image = images / name;
    s.study = s.id;
    std::string patient =
        text(t.at(r, c_patient), fmt::format("{}:{}: column '{}'", csv_path_, t.line_of(r), t.header()[c_patient]));
    // NIH writes patient ids as integers; the file name holds them zero-padded. Keep the decimal form.
    patient.erase(0, std::min(patient.find_first_not_of('0'), patient.size() - 1));
    s.patient = patient;
    s.labels.assign(kChexpertClasses.size(), 0.0f);
    std::vector<std::string> found;
    if (sample_format) {
      for (size_t k = 0; k < c_labels.size(); ++k) {
        const std::string& v = t.at(r, c_labels[k]);
        if (v == "1") {
          found.push_back(nih_labels()[k]);
        } else if (v != "0") {
          throw DataError(fmt::format("{}:{}: column '{}': expected 0 or 1, but found '{}'", csv_path_, t.line_of(r),
                                      nih_labels()[k], v));
        }
      }
    } else {
      const std::string& f = t.at(r, c_findings);
      size_t start = 0;
      while (start <= f.size()) {
        size_t bar = f.find('|', start);
        std::string one = trim(f.substr(start, bar == std::string::npos ? std::string::npos : bar - start));
        if (!one.empty()) found.push_back(one);
        if (bar == std::string::npos) break;
        start = bar + 1;
      }
      if (found.empty())
        throw DataError(fmt::format("{}:{}: 'Finding Labels' is empty (expected labels separated by '|' or 'No "
                                    "Finding')",
                                    csv_path_, t.line_of(r)));
    }
    for (const auto& f : found) {
      int idx = nih_to_chexpert(f);
      if (idx == -2)
        throw DataError(fmt::format("{}:{}: unknown NIH label '{}'; expected one of: {}", csv_path_, t.line_of(r), f,
                                    fmt::join(nih_labels(), ", ")));
      if (idx >= 0) s.labels[idx] = 1.0f;
    }
    // Split.
    if (has_split) {
      s.split = data::normalize_split(t, r, c_split);
    } else {
      const int bucket = data::sha256_bucket100(patient);
      if (use_lists) {
        if (test_set.count(name)) {
          s.split = "test";
        } else if (train_val_set.count(name)) {
          // Within train_val, keep the train:val ratio of split_percent.
          s.split = (p_train + p_val == 0 || bucket * (p_train + p_val) < 100 * p_train) ? "train" : "val";
        } else {
          not_listed.add(name);
          continue;
        }
      } else {
        s.split = bucket < p_train ? "train" : bucket < p_train + p_val ? "val" : "test";
      }
    }
    findings_of[s.id] = found;
    if (opts_.generate_reports) {
      s.report = nih_report(s.id, found);
      s.report_generated = true;
    }
    samples_.push_back(std::move(s));
  }
  text.report();
  if (!not_listed.empty())
    log::warn("nih: skipped {} (not in train_val_list or test_list)", not_listed.summary());
  data::finalize_samples(samples_, opts_.common, fmt::format("nih({})", csv_path_));
  // Boxes: only when there is a file, so that a source without one keeps its label files (and fingerprint).
  const std::filesystem::path boxes = opts_.boxes.empty() ? root / "boxes.csv" : data::resolve_under(root, opts_.boxes);
  if (!opts_.boxes.empty() || std::filesystem::exists(boxes)) {
    DAUG_CHECK_AS(DataError, std::filesystem::exists(boxes), where, ".boxes: '", boxes.string(), "' does not exist");
    label_files_.push_back(boxes);
    read_boxes(boxes, findings_of, in_csv);
  }
  if (opts_.generate_reports)
    log::info("nih: the reports are GENERATED from the NIH labels (NIH ChestX-ray14 has no radiology reports); "
              "text-side results on this data measure label recovery, not report understanding");
}

void NihSource::read_boxes(const std::filesystem::path& path,
                           const std::map<std::string, std::vector<std::string>>& findings,
                           const std::set<std::string>& in_csv) {
  const data::CsvTable t = data::CsvTable::read(path);
  const size_t ci = t.column("image"), cl = t.column("label"), cx = t.column("x"), cy = t.column("y"),
               cw = t.column("w"), ch = t.column("h");
  std::set<std::string> kept;
  for (const auto& s : samples_) kept.insert(s.id);
  constexpr double kSlack = 0.5;  // boxes rescaled from 1024 px and rounded may pass the edge by this much
  for (size_t r = 0; r < t.rows(); ++r) {
    const std::string where = fmt::format("{}:{}", path.string(), t.line_of(r));
    const std::string id = stem_of(t.at(r, ci)), label = t.at(r, cl);
    DAUG_CHECK_AS(DataError, in_csv.count(id), where, ": image '", t.at(r, ci), "' is not in ", csv_path_);
    if (!kept.count(id)) continue;  // listed, but left out by the view filter or the limits
    const auto& f = findings.at(id);
    DAUG_CHECK_AS(DataError, std::find(f.begin(), f.end(), label) != f.end(), where, ": label '", label,
                  "' is not positive for image '", id, "' in ", csv_path_,
                  " (positive: ", f.empty() ? std::string("none") : fmt::format("{}", fmt::join(f, ", ")), ")");
    TruthBox b;
    b.id = id;
    b.label = label;
    double* v[] = {&b.x, &b.y, &b.w, &b.h};
    const size_t cols[] = {cx, cy, cw, ch};
    for (int k = 0; k < 4; ++k) {
      *v[k] = t.number(r, cols[k]);  // "<file>:<line>: column 'x' must be a number, but got '...'"
      DAUG_CHECK_AS(DataError, std::isfinite(*v[k]), where, ": column '", t.header()[cols[k]],
                    "' must be a finite number, but got '", t.at(r, cols[k]), "'");
    }
    b.image_w = b.image_h = kBoxImageSize;
    if (!(b.w > 0 && b.h > 0) || b.x < -kSlack || b.y < -kSlack || b.x + b.w > kBoxImageSize + kSlack ||
        b.y + b.h > kBoxImageSize + kSlack)
      throw DataError(fmt::format("{}: box x={} y={} w={} h={} must have w, h > 0 and lie inside the {}x{} image",
                                  where, b.x, b.y, b.w, b.h, kBoxImageSize, kBoxImageSize));
    boxes_.push_back(std::move(b));
  }
}

std::string NihSource::describe() const {
  return fmt::format("nih(root={}, csv={}, {} images: {}{}{})", opts_.common.root,
                     std::filesystem::path(csv_path_).filename().string(), samples_.size(),
                     data::split_summary(samples_), opts_.generate_reports ? ", reports generated from labels" : "",
                     boxes_.empty() ? "" : fmt::format(", {} boxes", boxes_.size()));
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Source, "nih", daug::plugins::NihSource,
                     "NIH ChestX-ray14 (labels.csv sample or Data_Entry_2017.csv), labels mapped to CheXpert, "
                     "report text generated from labels")
