#pragma once
/// ListSource: the base of the dataset Source plugins. A plugin's constructor fills `samples_`, `grouping_` and
/// `label_files_` (every label/manifest/split file it parsed, for the cache fingerprint); the accessors are here once.
#include <daug/labels.h>
#include <daug/source.h>

#include <filesystem>
#include <vector>

namespace daug::data {

class ListSource : public Source {
 public:
  const std::vector<Sample>& samples() const override { return samples_; }
  const SuperClassGrouping& superclasses() const override { return grouping_; }
  std::vector<std::filesystem::path> label_files() const override { return label_files_; }

 protected:
  SuperClassGrouping grouping_;
  std::vector<Sample> samples_;
  std::vector<std::filesystem::path> label_files_;
};

}  // namespace daug::data
