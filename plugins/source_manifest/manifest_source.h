#pragma once
/// `manifest` Source: a generic CSV manifest with one row per image: `image`, the 14 CheXpert class columns,
/// `split`, and optional `report`, `study`, `patient`, `id`.
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

struct ManifestSourceOptions {
  data::SourceCommonOptions common;
  data::LabelPolicyOptions labels;
  std::string csv = "manifest.csv";  ///< the manifest, relative to root (or absolute)
  std::string images_dir;            ///< `image` paths are relative to this (relative to root); "" = root
  std::string report_column = "report";

  void visit(OptionVisitor& v);
};

class ManifestSource final : public data::OptionsListSource<ManifestSource, ManifestSourceOptions> {
 public:
  explicit ManifestSource(Options options);
  std::string describe() const override;
};

}  // namespace daug::plugins
