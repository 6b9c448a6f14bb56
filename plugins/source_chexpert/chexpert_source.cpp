// `chexpert` Source plugin: CheXpert-v1.0 (and -small) CSVs.
#include "chexpert_source.h"

#include <daug/build_context.h>
#include <daug/data/csv.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/register.h>

#include <fmt/format.h>

#include <algorithm>

namespace daug::plugins {

void ChexpertSourceOptions::visit(OptionVisitor& v) {
  common.visit(v);
  labels.visit(v);
  v("train_csv", train_csv, "CSV of the train split, relative to root (\"\" = none)");
  v("val_csv", val_csv, "CSV of the val split, relative to root (\"\" = none); CheXpert calls it valid.csv");
  v("test_csv", test_csv, "CSV of the test split, relative to root (\"\" = none), same columns");
  v("image_root", image_root,
    "folder the CSV's Path column is relative to; \"\" = the parent of root when Path starts with root's folder "
    "name (CheXpert-v1.0-small/train/...), else root");
  v("frontal_only", frontal_only, "keep only rows whose Frontal/Lateral is \"Frontal\"");
  v("views", views, "keep only these AP/PA values (e.g. [\"PA\", \"AP\"]); empty = all");
}

namespace {
std::string first_component(const std::string& p) {
  auto it = std::filesystem::path(p).begin();
  return it == std::filesystem::path(p).end() ? "" : it->string();
}
}  // namespace

ChexpertSource::ChexpertSource(Options o) : OptionsListSource(std::move(o), "chexpert") {
  const auto uncertain = opts_.labels.uncertain_policy();
  const auto blank = opts_.labels.blank_policy();
  const std::filesystem::path& root = root_;
  DAUG_CHECK_AS(ConfigError, !opts_.train_csv.empty() || !opts_.val_csv.empty() || !opts_.test_csv.empty(),
                where_, ": at least one of train_csv, val_csv, test_csv must be set");
  const std::string root_name = root.filename().string();
  const std::filesystem::path& root_dir = root;

  size_t dropped_lateral = 0, dropped_view = 0;
  for (auto [split, file] : {std::pair<std::string, std::string>{"train", opts_.train_csv},
                             {"val", opts_.val_csv}, {"test", opts_.test_csv}}) {
    if (file.empty()) continue;
    label_files_.push_back(data::resolve_under(root, file));
    const data::CsvTable t = data::CsvTable::read(label_files_.back());
    const size_t c_path = t.column("Path");
    const auto c_labels = data::chexpert_columns(t);
    const size_t c_fl = opts_.frontal_only ? t.column("Frontal/Lateral") : 0;
    const size_t c_appa = opts_.views.empty() ? 0 : t.column("AP/PA");
    size_t kept = 0;
    data::TextCheck text(fmt::format("chexpert({})", t.name()), opts_.common.strict);
    for (size_t r = 0; r < t.rows(); ++r) {
      if (opts_.frontal_only && t.at(r, c_fl) != "Frontal") {
        if (t.at(r, c_fl) != "Lateral")
          throw DataError(fmt::format("{}:{}: column 'Frontal/Lateral': expected Frontal or Lateral, but found '{}'",
                                      t.name(), t.line_of(r), t.at(r, c_fl)));
        ++dropped_lateral;
        continue;
      }
      if (!opts_.views.empty() &&
          std::find(opts_.views.begin(), opts_.views.end(), t.at(r, c_appa)) == opts_.views.end()) {
        ++dropped_view;
        continue;
      }
      const std::string& p = t.at(r, c_path);
      DAUG_CHECK_AS(DataError, !p.empty(), t.name(), ":", t.line_of(r), ": column 'Path' is empty");
      Sample s;
      if (!opts_.image_root.empty()) {
        s.image = data::resolve_under(data::resolve_under(root, opts_.image_root), p);
      } else if (first_component(p) == root_name) {
        s.image = data::resolve_under(root_dir.parent_path(), p);
      } else {
        s.image = data::resolve_under(root_dir, p);
      }
      // .../patient00001/study1/view1_frontal.jpg → ids from the last three components.
      // The ids come from the path's text (the image is opened by its bytes, unchanged).
      std::filesystem::path rel(text(p, fmt::format("{}:{}: column 'Path'", t.name(), t.line_of(r))));
      const std::string view = rel.stem().string();
      const std::string study = rel.parent_path().filename().string();
      const std::string patient = rel.parent_path().parent_path().filename().string();
      DAUG_CHECK_AS(DataError, !study.empty() && !patient.empty(), t.name(), ":", t.line_of(r),
                    ": Path '", p, "' must end in <patient>/<study>/<view>.jpg");
      s.id = patient + "_" + study + "_" + view;
      s.study = patient + "_" + study;
      s.patient = patient;
      s.split = split;
      s.labels = data::read_chexpert_labels(t, r, c_labels, uncertain, blank);
      samples_.push_back(std::move(s));
      ++kept;
    }
    text.report();
    log::info("chexpert: {} → {}: {} of {} rows kept", t.name(), split, kept, t.rows());
  }
  if (dropped_lateral || dropped_view)
    log::info("chexpert: left out {} lateral images (frontal_only) and {} images of other AP/PA views",
              dropped_lateral, dropped_view);
  data::finalize_samples(samples_, opts_.common, fmt::format("chexpert({})", root.string()));
}

std::string ChexpertSource::describe() const {
  return fmt::format("chexpert(root={}, uncertain={}, blank={}, frontal_only={}, {} images: {})",
                     opts_.common.root, opts_.labels.uncertain, opts_.labels.blank, opts_.frontal_only,
                     samples_.size(), data::split_summary(samples_));
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Source, "chexpert", daug::plugins::ChexpertSource,
                     "CheXpert train.csv/valid.csv (Path, Frontal/Lateral, AP/PA, 14 classes), uncertain/blank policies")
