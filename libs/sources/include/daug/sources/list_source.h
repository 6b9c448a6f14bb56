#pragma once
/// ListSource: the base of the dataset Source plugins. A plugin's constructor fills `samples_`, `grouping_` and
/// `label_files_` (every label/manifest/split file it parsed, for the cache fingerprint); the accessors are here once.
#include <daug/labels.h>
#include <daug/options.h>
#include <daug/source.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace daug {
class BuildContext;
}

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

/// The skeleton every dataset Source plugin shares: `Options` (with a data::SourceCommonOptions `common`),
/// `opts_`, `create()`, and the start of the constructor: checks the options (messages name `where_`,
/// "[<name> source]"), sets `grouping_`, and resolves `root_` (DataError naming <name> if it is not a directory).
///   class MySource final : public data::OptionsListSource<MySource, MySourceOptions> { ... };
///   MySource::MySource(Options o) : OptionsListSource(std::move(o), "my") { ... }
template <class Derived, class Opts>
class OptionsListSource : public ListSource {
 public:
  using Options = Opts;
  static std::shared_ptr<Source> create(Options options, BuildContext&) {
    return std::make_shared<Derived>(std::move(options));
  }

 protected:
  OptionsListSource(Options options, const std::string& name)
      : opts_(std::move(options)), where_("[" + name + " source]") {
    ::daug::check_options(opts_, where_);
    grouping_ = opts_.common.grouping(where_);
    root_ = opts_.common.root_dir(name);
  }

  Options opts_;
  std::string where_;           ///< "[<name> source]", for option errors
  std::filesystem::path root_;  ///< opts_.common.root_dir(<name>)
};

}  // namespace daug::data
