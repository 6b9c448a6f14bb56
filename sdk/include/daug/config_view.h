#pragma once
/// A read-only, typed, location-aware view of ONE table of the resolved configuration.
///
/// toml++ never crosses into plugin code: plugins see ConfigView (and usually only through their Options
/// struct, see options.h). Every value remembers the file:line:column it came from, through imports and
/// `--set` overrides, so errors can point at the line the user must edit.
#include <daug/api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace daug {

/// Where a configuration value was written. `file` is "--set" for command-line overrides.
struct DAUG_SDK_API SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
  /// "file:line:col" or "file" or "<unknown>".
  std::string str() const;
};

class ConfigDocument;

/// The candidate closest to `word` by edit distance (at most 2 edits), or "" — for "did you mean" hints.
DAUG_SDK_API std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

/// View of the table at `path` ("guidance", "train_clip") of a resolved document.
/// Cheap to copy; keeps the document alive.
class DAUG_SDK_API ConfigView {
 public:
  ConfigView(std::shared_ptr<const ConfigDocument> doc, std::string path);

  /// Dotted path of this table in the document ("" is the root).
  const std::string& path() const { return path_; }
  /// "[path]" for messages ("[root]" for the root table).
  std::string label() const;
  /// True if the table exists in the document.
  bool exists() const;
  bool has(const std::string& key) const;
  /// Keys of this table in document order.
  std::vector<std::string> keys() const;
  /// Location of `key`, or of the table itself when key is empty.
  SourceLocation location(const std::string& key = {}) const;
  /// TOML type name of `key`: "string", "integer", "float", "boolean", "array", "table", ... or "missing".
  std::string type_of(const std::string& key) const;

  /// Typed reads; a missing key or a wrong type throws ConfigError naming file:line:col, the key and the type.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;  ///< integers widen to double; nothing else converts
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<double> get_double_array(const std::string& key) const;
  std::vector<std::vector<std::string>> get_string_matrix(const std::string& key) const;
  /// Sub-table view.
  ConfigView table(const std::string& key) const;
  /// The table re-serialised as TOML (keys sorted), e.g. for hashing a stage's inputs.
  std::string to_toml() const;

  const std::shared_ptr<const ConfigDocument>& document() const { return doc_; }

 private:
  std::shared_ptr<const ConfigDocument> doc_;
  std::string path_;
};

}  // namespace daug
