#pragma once
/// Source: a dataset of chest X-rays with labels, reports and a split.
#include <daug/component.h>
#include <daug/labels.h>

#include <filesystem>
#include <string>
#include <vector>

namespace daug {

/// One item (an image) of a dataset.
struct Sample {
  std::string id;                 ///< unique image id (file stem, dicom_id); names heatmap files
  std::filesystem::path image;    ///< absolute path of the image file
  std::vector<float> labels;      ///< 14 values in kChexpertClasses order: 1, 0, or NaN (ignored)
  std::string report;             ///< report text; may be empty
  bool report_generated = false;  ///< true when the report was generated from labels (e.g. NIH)
  std::string split;              ///< "train", "val" or "test"
  std::string study;              ///< study id (items of one study share a report); may equal id
  std::string patient;            ///< patient id; may be empty
};

/// Contract: samples() is fixed after construction; every listed image existed when the source was built
/// (missing files are skipped and reported, or an error in strict mode); ids are unique.
class DAUG_SDK_API Source : public Component {
 public:
  static constexpr const char* kInterface = "Source";
  ~Source() override;
  virtual const std::vector<Sample>& samples() const = 0;
  virtual const SuperClassGrouping& superclasses() const = 0;
  /// Items of one split ("train", "val", "test"), or of several joined by '+' ("train+val").
  /// Throws daug::DataError if the selection is empty.
  std::vector<const Sample*> split(const std::string& which) const;
  /// Digest of the data as parsed (every sample's id, split, labels, report, study, patient and image path, the
  /// super-class grouping), the contents of label_files(), and each image file's size and modification time:
  /// editing labels.csv, or replacing an image, changes it and so invalidates every cached stage that used it.
  std::string fingerprint() const override;
  /// Label, manifest and split files the source parsed; their contents enter fingerprint().
  virtual std::vector<std::filesystem::path> label_files() const { return {}; }
};

}  // namespace daug
