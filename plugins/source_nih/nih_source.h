#pragma once
/// `nih` Source: NIH ChestX-ray14 (the embedded 585-image sample's labels.csv, or NIH's Data_Entry_2017*.csv),
/// labels mapped to the 14 CheXpert classes, report-style text generated from the labels.
#include <daug/sources/list_source.h>
#include <daug/sources/source_util.h>
#include <daug/options.h>
#include <daug/source.h>

#include <memory>
#include <string>
#include <vector>

namespace daug {
class BuildContext;
}

namespace daug::plugins {

struct NihSourceOptions {
  data::SourceCommonOptions common;
  std::string csv;                                  ///< "" = labels.csv if present, else the last Data_Entry_2017*.csv
  std::string images_dir = "images";                ///< image folder, relative to root (or absolute)
  std::string train_val_list;                       ///< NIH train_val_list.txt ("" = use it if present in root)
  std::string test_list;                            ///< NIH test_list.txt ("" = use it if present in root)
  std::vector<int64_t> split_percent = {70, 10, 20};  ///< patient-bucket split when the CSV has no split column
  std::vector<std::string> views;                   ///< keep only these view positions (PA, AP); empty = all
  bool generate_reports = true;                     ///< report-style text from the labels (NIH has no reports)

  void visit(OptionVisitor& v);
};

class NihSource final : public data::OptionsListSource<NihSource, NihSourceOptions> {
 public:
  explicit NihSource(Options options);
  std::string describe() const override;
  const Options& options() const { return opts_; }
  /// The CSV actually read.
  const std::string& csv_path() const { return csv_path_; }

 private:
  std::string csv_path_;
};

/// The 15 NIH labels, in the embedded sample's column order.
const std::vector<std::string>& nih_labels();
/// CheXpert class index of an NIH label; -1 for the dropped labels (Emphysema, Fibrosis, Hernia); -2 if unknown.
int nih_to_chexpert(const std::string& nih_label);
/// Report-style text for an image with these NIH findings (NIH spellings; "No Finding" or empty = normal study).
/// Sentences are picked from several templates per finding by a hash of `image_id` (deterministic).
std::string nih_report(const std::string& image_id, const std::vector<std::string>& findings);

}  // namespace daug::plugins
