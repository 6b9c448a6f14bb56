#pragma once
/// `nih` Source: NIH ChestX-ray14 (the embedded 585-image sample's labels.csv, or NIH's Data_Entry_2017*.csv),
/// labels mapped to the 14 CheXpert classes, report-style text generated from the labels.
#include <daug/localization_truth.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/sources/list_source.h>
#include <daug/sources/source_util.h>

#include <map>
#include <memory>
#include <set>
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
  std::string boxes;                                ///< "" = root/boxes.csv if present: image,label,x,y,w,h (256 px)

  void visit(OptionVisitor& v);
};

/// Serves ground-truth boxes (LocalizationTruth) when a boxes file is given or root/boxes.csv exists; without one,
/// truth_boxes() is empty and the source is exactly as before (same label files, same fingerprint).
class NihSource final : public data::OptionsListSource<NihSource, NihSourceOptions>, public LocalizationTruth {
 public:
  explicit NihSource(Options options);
  std::string describe() const override;
  const Options& options() const { return opts_; }
  /// The CSV actually read.
  const std::string& csv_path() const { return csv_path_; }
  /// Boxes of the listed images (those the view filter and limits kept), in file order; coordinates in pixels of
  /// the kBoxImageSize-square images.
  const std::vector<TruthBox>& truth_boxes() const override { return boxes_; }
  /// Side of the images the boxes file's coordinates refer to (the embedded data's 256-px PNGs).
  static constexpr double kBoxImageSize = 256;

 private:
  /// Reads the boxes file: every row must name an image of the label CSV, with a label positive there.
  void read_boxes(const std::filesystem::path& path, const std::map<std::string, std::vector<std::string>>& findings,
                  const std::set<std::string>& listed);
  std::string csv_path_;
  std::vector<TruthBox> boxes_;
};

/// The 15 NIH labels, in the embedded sample's column order.
const std::vector<std::string>& nih_labels();
/// CheXpert class index of an NIH label; -1 for the dropped labels (Emphysema, Fibrosis, Hernia); -2 if unknown.
int nih_to_chexpert(const std::string& nih_label);
/// Report-style text for an image with these NIH findings (NIH spellings; "No Finding" or empty = normal study).
/// Sentences are picked from several templates per finding by a hash of `image_id` (deterministic).
std::string nih_report(const std::string& image_id, const std::vector<std::string>& findings);

}  // namespace daug::plugins
