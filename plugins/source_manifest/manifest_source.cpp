// `manifest` Source plugin: the generic CSV manifest (any dataset converted to one row per image).
#include "manifest_source.h"

#include <daug/build_context.h>
#include <daug/data/csv.h>
#include <daug/error.h>
#include <daug/register.h>
#include <daug/sources/source_util.h>

#include <fmt/format.h>

namespace daug::plugins {

void ManifestSourceOptions::visit(OptionVisitor& v) {
  common.visit(v);
  labels.visit(v);
  v("csv", csv,
    "manifest CSV (relative to root or absolute). Columns: image, the 14 CheXpert classes (exact spellings, any "
    "order; 1/0/-1/blank), split (train/val/validate/test); optional: report, study, patient, id (default: the "
    "image file stem)",
    Check::required_non_empty());
  v("images_dir", images_dir, "folder the `image` paths are relative to (relative to root or absolute); \"\" = root");
  v("report_column", report_column, "column holding the report text (optional in the file)",
    Check::required_non_empty());
}

ManifestSource::ManifestSource(Options o) : OptionsListSource(std::move(o), "manifest") {
  const auto uncertain = opts_.labels.uncertain_policy();
  const auto blank = opts_.labels.blank_policy();
  const std::filesystem::path& root = root_;
  const std::filesystem::path images =
      opts_.images_dir.empty() ? root : data::resolve_under(root, opts_.images_dir);
  label_files_.push_back(data::resolve_under(root, opts_.csv));
  const data::CsvTable t = data::CsvTable::read(label_files_.back());
  const size_t c_image = t.column("image");
  const size_t c_split = t.column("split");
  const auto c_labels = data::chexpert_columns(t);
  auto optional = [&](const std::string& name) { return t.has_column(name) ? static_cast<long>(t.column(name)) : -1L; };
  const long c_report = optional(opts_.report_column), c_study = optional("study"),
             c_patient = optional("patient"), c_id = optional("id");
  data::TextCheck text(fmt::format("manifest({})", t.name()), opts_.common.strict);
  auto cell = [&](size_t r, long c) {
    return text(t.at(r, static_cast<size_t>(c)),
                fmt::format("{}:{}: column '{}'", t.name(), t.line_of(r), t.header()[static_cast<size_t>(c)]));
  };
  for (size_t r = 0; r < t.rows(); ++r) {
    Sample s;
    const std::string& img = t.at(r, c_image);
    DAUG_CHECK_AS(DataError, !img.empty(), t.name(), ":", t.line_of(r), ": column 'image' is empty");
    s.image = data::resolve_under(images, img);
    s.id = c_id >= 0 ? cell(r, c_id)
                     : text(std::filesystem::path(img).stem().string(),
                            fmt::format("{}:{}: column 'image' (file stem as id)", t.name(), t.line_of(r)));
    DAUG_CHECK_AS(DataError, !s.id.empty(), t.name(), ":", t.line_of(r), ": empty id");
    s.labels = data::read_chexpert_labels(t, r, c_labels, uncertain, blank);
    s.split = data::normalize_split(t, r, c_split);
    if (c_report >= 0) s.report = cell(r, c_report);
    s.study = c_study >= 0 && !t.at(r, c_study).empty() ? cell(r, c_study) : s.id;
    if (c_patient >= 0) s.patient = cell(r, c_patient);
    samples_.push_back(std::move(s));
  }
  text.report();
  try {
    data::finalize_samples(samples_, opts_.common, fmt::format("manifest({})", t.name()));
  } catch (const DataError& e) {
    if (c_id < 0 && std::string(e.what()).find("ids must be unique") != std::string::npos)
      throw DataError(std::string(e.what()) + " (image file stems repeat: add an 'id' column to the manifest)");
    throw;
  }
}

std::string ManifestSource::describe() const {
  return fmt::format("manifest(root={}, csv={}, {} images: {})", opts_.common.root, opts_.csv, samples_.size(),
                     data::split_summary(samples_));
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Source, "manifest", daug::plugins::ManifestSource,
                     "generic CSV manifest: image, 14 CheXpert class columns, split, optional report/study/patient")
