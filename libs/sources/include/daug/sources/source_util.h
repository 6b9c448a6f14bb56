#pragma once
/// Helpers shared by the dataset Source plugins (source_nih, source_manifest, source_chexpert, source_mimic):
/// the options every source has, CheXpert-style label cells and policies, split names, and the end-of-build
/// checks (limits, missing images, unique ids, non-empty result).
///
/// Example (inside a plugin's Options):
///   struct Options {
///     daug::data::SourceCommonOptions common;
///     std::string csv = "manifest.csv";
///     void visit(daug::OptionVisitor& v) { common.visit(v); v("csv", csv, "manifest CSV, relative to root"); }
///   };
#include <daug/data/csv.h>
#include <daug/labels.h>
#include <daug/options.h>
#include <daug/source.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace daug::data {

/// Options every Source has.
struct SourceCommonOptions {
  std::string root;                ///< dataset root directory (required)
  bool strict = false;             ///< missing images: false = skip, count and log; true = DataError
  int64_t limit = 0;               ///< keep at most this many items in all (0 = no limit); for smoke runs
  int64_t max_per_split = 0;       ///< keep at most this many items per split (0 = no limit)
  std::vector<std::string> superclass_names = released_superclass_names();
  std::vector<std::vector<std::string>> superclass_members = released_superclass_members();

  void visit(OptionVisitor& v);
  /// `root` as an absolute, normalised path (Sample::image paths are absolute); throws DataError naming `source`
  /// if it is not an existing directory.
  std::filesystem::path root_dir(const std::string& source) const;
  /// The grouping these options describe; throws ConfigError (naming `where`) on an unknown class name.
  SuperClassGrouping grouping(const std::string& where) const;

  static std::vector<std::string> released_superclass_names();
  static std::vector<std::vector<std::string>> released_superclass_members();
};

/// What to do with an uncertain (-1) or blank label cell: 0, 1, or NaN (ignored by losses and metrics).
enum class LabelPolicy { zeros, ones, ignore };
/// "zeros" | "ones" | "ignore"; anything else throws ConfigError naming `where`.
LabelPolicy parse_label_policy(const std::string& value, const std::string& where);
/// The allowed policy names, for Check::choice.
std::vector<std::string> label_policy_names();

/// Reads a CheXpert-style label cell ("1", "1.0", "0", "0.0", "-1", "-1.0", or blank) and applies the
/// policies. Anything else throws DataError "<file>:<line>: column '<c>': expected 1, 0, -1 or blank, but found '<v>'".
float parse_label_cell(const CsvTable& table, size_t row, size_t col, LabelPolicy uncertain, LabelPolicy blank);

/// The `uncertain` and `blank` options of sources that read CheXpert-style label cells.
struct LabelPolicyOptions {
  std::string uncertain = "zeros";  ///< -1 cells: zeros (U-Zeros, DAug's chexpert_uncertain: negative), ones, ignore
  std::string blank = "zeros";      ///< blank cells (not mentioned): zeros (DAug), ones, ignore (NaN)
  void visit(OptionVisitor& v);
  LabelPolicy uncertain_policy() const { return parse_label_policy(uncertain, "uncertain"); }
  LabelPolicy blank_policy() const { return parse_label_policy(blank, "blank"); }
};

/// Column index of each of the 14 CheXpert classes (kChexpertClasses order; exact spellings, any order in the
/// file). Throws DataError "<file>: missing label columns: ...; columns: ..." listing every missing class.
std::vector<size_t> chexpert_columns(const CsvTable& table);
/// The 14 labels of `row` (columns from chexpert_columns), with the policies applied.
std::vector<float> read_chexpert_labels(const CsvTable& table, size_t row, const std::vector<size_t>& columns,
                                        LabelPolicy uncertain, LabelPolicy blank);

/// "train" → "train"; "val", "valid", "validate", "validation" → "val"; "test" → "test" (case-sensitive).
/// Returns "" for anything else.
std::string normalize_split_value(const std::string& value);
/// As normalize_split_value, but throws DataError "<file>:<line>: column 'split': ..." for an unknown value.
std::string normalize_split(const CsvTable& table, size_t row, size_t col);

/// Byte offset of the first byte of `text` that is not part of a well-formed UTF-8 sequence (Unicode 3.9 D92:
/// no overlong forms, surrogates or code points above U+10FFFF), or std::string::npos when it is all valid.
size_t first_invalid_utf8(const std::string& text);
/// `text` with every maximal ill-formed subsequence replaced by U+FFFD (Unicode §3.9 "U+FFFD substitution of
/// maximal subparts", as Python's bytes.decode("utf-8", "replace")); `replaced` (if given) gets their number.
std::string replace_invalid_utf8(const std::string& text, size_t* replaced = nullptr);

/// Validates the text a Source reads (reports, ids, patient and study fields) when it loads it, so that invalid
/// UTF-8 fails there, with file, row and byte offset, not later inside a JSON writer. strict: DataError;
/// otherwise invalid sequences become U+FFFD, counted, and report() logs one warning per source.
class TextCheck {
 public:
  /// `source` starts the summary line, e.g. "manifest(<file>)".
  TextCheck(std::string source, bool strict) : source_(std::move(source)), strict_(strict) {}
  /// Returns `text` as it is when valid. `where` names it, e.g. "labels.csv:7: column 'report'" or a file path.
  std::string operator()(std::string text, const std::string& where);
  /// Logs "<source>: N text field(s) held invalid UTF-8 ..." once, if any were replaced.
  void report() const;
  size_t fields() const { return fields_; }
  size_t sequences() const { return sequences_; }

 private:
  std::string source_;
  bool strict_;
  size_t fields_ = 0, sequences_ = 0;
  std::string first_;
};

/// Up to `keep` examples of a problem plus the total count, for one message at the end of a build.
class ProblemList {
 public:
  explicit ProblemList(std::string what, size_t keep = 5) : what_(std::move(what)), keep_(keep) {}
  void add(const std::string& example);
  size_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  /// "<count> <what>; first: a, b, c" (or "" when empty).
  std::string summary() const;

 private:
  std::string what_;
  size_t keep_;
  size_t count_ = 0;
  std::vector<std::string> examples_;
};

/// `p` if absolute, else `root / p` (lexically normalised).
std::filesystem::path resolve_under(const std::filesystem::path& root, const std::string& p);

/// Checks that `root` is an existing directory; throws DataError naming `source` otherwise.
void require_directory(const std::filesystem::path& root, const std::string& source, const std::string& what);

/// The end of every Source's build, in this order: keeps the first `max_per_split` items of each split and the
/// first `limit` items overall (file order); drops items whose image file is missing (strict: DataError listing
/// the count and the first paths; otherwise one warning with the same); checks that ids are unique and that
/// something is left; logs the split sizes. `source` names the plugin and root for messages.
void finalize_samples(std::vector<Sample>& samples, const SourceCommonOptions& options, const std::string& source);

/// "train 406, val 60, test 119" (splits in that order, then any others).
std::string split_summary(const std::vector<Sample>& samples);

/// Collapses runs of whitespace (spaces, tabs, newlines) into one space and trims both ends.
std::string collapse_whitespace(const std::string& text);

}  // namespace daug::data
