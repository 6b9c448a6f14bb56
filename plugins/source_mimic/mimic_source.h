#pragma once
/// `mimic_cxr` Source: MIMIC-CXR-JPG v2.0.0 (files/pXX/pSUBJECT/sSTUDY/DICOM.jpg with the chexpert/negbio, split
/// and metadata CSVs) plus MIMIC-CXR report text (files/pXX/pSUBJECT/sSTUDY.txt); with image_format = "dicom",
/// the MIMIC-CXR DICOM release's files/pXX/pSUBJECT/sSTUDY/DICOM.dcm instead of the JPEGs.
#include "mimic_report.h"

#include <daug/sources/list_source.h>
#include <daug/sources/source_util.h>
#include <daug/options.h>
#include <daug/source.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace daug {
class BuildContext;
}

namespace daug::plugins {

struct MimicSourceOptions {
  data::SourceCommonOptions common;
  data::LabelPolicyOptions labels;
  std::string labeler = "chexpert";  ///< mimic-cxr-2.0.0-<labeler>.csv: chexpert | negbio
  std::string labels_csv;            ///< overrides the labeler file (same columns), e.g. VisualCheXbert labels
  std::string split_csv = "mimic-cxr-2.0.0-split.csv";
  std::string metadata_csv = "mimic-cxr-2.0.0-metadata.csv";
  std::string images_dir = "files";
  /// unset = "jpg" (an option added later: unset keeps the effective options, hence cache keys, of older configs)
  std::optional<std::string> image_format;
  std::vector<std::string> views = {"PA", "AP", "AP AXIAL"};  ///< ViewPosition filter (released); empty = all
  std::string items = "image";                    ///< image | study (one image per study, first by `views` order)
  std::string reports = "required";               ///< required | optional | none
  std::string reports_root;                       ///< folder holding files/pXX/...; "" = root
  std::string report_text = "findings_impression";  ///< findings_impression | impression

  void visit(OptionVisitor& v);
};

class MimicSource final : public data::OptionsListSource<MimicSource, MimicSourceOptions> {
 public:
  explicit MimicSource(Options options);
  std::string describe() const override;
};

/// files/p10/p10000032/s50414267 (no extension) for subject 10000032, study 50414267.
std::string mimic_study_dir(const std::string& subject_id, const std::string& study_id);

}  // namespace daug::plugins
