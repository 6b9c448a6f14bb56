#pragma once
/// `chexpert` Source: CheXpert (Irvin et al., AAAI 2019) train.csv / valid.csv layout:
/// Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,...,Support Devices.
#include <daug/sources/list_source.h>
#include <daug/sources/source_util.h>
#include <daug/options.h>
#include <daug/source.h>

#include <memory>
#include <string>

namespace daug {
class BuildContext;
}

namespace daug::plugins {

struct ChexpertSourceOptions {
  data::SourceCommonOptions common;
  data::LabelPolicyOptions labels;
  std::string train_csv = "train.csv";  ///< relative to root; "" = no train split
  std::string val_csv = "valid.csv";    ///< relative to root; "" = no val split
  std::string test_csv;                 ///< relative to root; "" = no test split
  std::string image_root;               ///< `Path` is relative to this; "" = see README (root or its parent)
  bool frontal_only = true;             ///< keep Frontal/Lateral == "Frontal" only
  std::vector<std::string> views;       ///< keep only these AP/PA values (e.g. ["PA","AP"]); empty = all

  void visit(OptionVisitor& v);
};

class ChexpertSource final : public data::OptionsListSource<ChexpertSource, ChexpertSourceOptions> {
 public:
  explicit ChexpertSource(Options options);
  std::string describe() const override;
};

}  // namespace daug::plugins
