#pragma once
/// INTERNAL (core and sdk/src only; plugins must not include this): the resolved TOML document behind
/// ConfigView, with the source location of every key.
#include <daug/config_view.h>

#include <toml++/toml.h>

#include <map>
#include <string>

namespace daug {

class ConfigDocument {
 public:
  toml::table root;
  /// Dotted key path ("guidance.scale", "guidance") → where it was written. toml++ drops source regions when
  /// nodes are copied during import merging, so the loader records them here.
  std::map<std::string, SourceLocation> locations;
  /// File the document was loaded from (for messages about the root).
  std::string main_file;

  const toml::node* find(const std::string& dotted) const;
};

}  // namespace daug
