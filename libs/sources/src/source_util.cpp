#include <daug/sources/source_util.h>

#include <daug/error.h>
#include <daug/log.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <limits>
#include <map>
#include <set>

namespace daug::data {

std::vector<std::string> SourceCommonOptions::released_superclass_names() {
  return SuperClassGrouping::released().names;
}

std::vector<std::vector<std::string>> SourceCommonOptions::released_superclass_members() {
  std::vector<std::vector<std::string>> out;
  for (const auto& m : SuperClassGrouping::released().members) {
    std::vector<std::string> names;
    for (int i : m) names.emplace_back(kChexpertClasses[i]);
    out.push_back(std::move(names));
  }
  return out;
}

void SourceCommonOptions::visit(OptionVisitor& v) {
  v("root", root, "dataset root directory (${config_dir} is expanded by the config loader)",
    Check::required_non_empty());
  v("strict", strict,
    "missing image files and invalid UTF-8 text: false = skip the images and replace invalid sequences with U+FFFD, "
    "logging counts and first examples; true = fail with a DataError");
  v("limit", limit, "keep at most this many items in all, in file order (0 = no limit; for smoke runs)",
    Check::at_least(0));
  v("max_per_split", max_per_split, "keep at most this many items of each split, in file order (0 = no limit)",
    Check::at_least(0));
  v("superclass_names", superclass_names,
    "display names of the super-classes (default: the released DAug grouping, REFERENCE.md §1.2)",
    Check::required_non_empty());
  v("superclass_members", superclass_members,
    "for each super-class, its member CheXpert classes (exact spellings; one list per name)",
    Check::required_non_empty());
}

std::filesystem::path SourceCommonOptions::root_dir(const std::string& source) const {
  std::filesystem::path r = std::filesystem::absolute(std::filesystem::path(root)).lexically_normal();
  if (!r.has_filename() && r.has_parent_path() && r != r.root_path()) r = r.parent_path();  // drop a trailing '/'
  require_directory(r, source, "root");
  return r;
}

SuperClassGrouping SourceCommonOptions::grouping(const std::string& where) const {
  return SuperClassGrouping::from_names(superclass_names, superclass_members, where);
}

std::vector<std::string> label_policy_names() { return {"zeros", "ones", "ignore"}; }

LabelPolicy parse_label_policy(const std::string& value, const std::string& where) {
  if (value == "zeros") return LabelPolicy::zeros;
  if (value == "ones") return LabelPolicy::ones;
  if (value == "ignore") return LabelPolicy::ignore;
  throw ConfigError(fmt::format("{}: label policy must be one of zeros, ones, ignore, but got '{}'", where, value));
}

namespace {
float apply(LabelPolicy p) {
  switch (p) {
    case LabelPolicy::zeros: return 0.0f;
    case LabelPolicy::ones: return 1.0f;
    case LabelPolicy::ignore: break;
  }
  return std::numeric_limits<float>::quiet_NaN();
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}
}  // namespace

float parse_label_cell(const CsvTable& table, size_t row, size_t col, LabelPolicy uncertain, LabelPolicy blank) {
  const std::string v = trim(table.at(row, col));
  if (v.empty()) return apply(blank);
  if (v == "1" || v == "1.0" || v == "1.") return 1.0f;
  if (v == "0" || v == "0.0" || v == "0." || v == "-0.0") return 0.0f;
  if (v == "-1" || v == "-1.0" || v == "-1.") return apply(uncertain);
  throw DataError(fmt::format("{}:{}: column '{}': expected 1, 0, -1 or blank, but found '{}'", table.name(),
                              table.line_of(row), table.header()[col], table.at(row, col)));
}

void LabelPolicyOptions::visit(OptionVisitor& v) {
  v("uncertain", uncertain,
    "uncertain (-1) labels: zeros (U-Zeros, as DAug), ones (U-Ones), ignore (NaN, left out of losses and metrics)",
    Check::choice(label_policy_names()));
  v("blank", blank, "blank labels (not mentioned): zeros (as DAug), ones, ignore (NaN)",
    Check::choice(label_policy_names()));
}

std::vector<size_t> chexpert_columns(const CsvTable& table) {
  std::vector<size_t> cols;
  std::vector<std::string> missing;
  for (const char* c : kChexpertClasses) {
    if (table.has_column(c)) {
      cols.push_back(table.column(c));
    } else {
      missing.emplace_back(c);
    }
  }
  if (!missing.empty())
    throw DataError(fmt::format("{}: missing label columns: {} (the 14 CheXpert classes must be spelled exactly); "
                                "columns: {}",
                                table.name(), fmt::join(missing, ", "), fmt::join(table.header(), ", ")));
  return cols;
}

std::vector<float> read_chexpert_labels(const CsvTable& table, size_t row, const std::vector<size_t>& columns,
                                        LabelPolicy uncertain, LabelPolicy blank) {
  std::vector<float> out;
  out.reserve(columns.size());
  for (size_t c : columns) out.push_back(parse_label_cell(table, row, c, uncertain, blank));
  return out;
}

std::string normalize_split_value(const std::string& value) {
  if (value == "train") return "train";
  if (value == "val" || value == "valid" || value == "validate" || value == "validation") return "val";
  if (value == "test") return "test";
  return "";
}

std::string normalize_split(const CsvTable& table, size_t row, size_t col) {
  std::string s = normalize_split_value(table.at(row, col));
  if (s.empty())
    throw DataError(fmt::format("{}:{}: column '{}': expected train, val (or validate/valid) or test, but found '{}'",
                                table.name(), table.line_of(row), table.header()[col], table.at(row, col)));
  return s;
}

void ProblemList::add(const std::string& example) {
  if (examples_.size() < keep_) examples_.push_back(example);
  ++count_;
}

std::string ProblemList::summary() const {
  if (count_ == 0) return "";
  return fmt::format("{} {}; first: {}{}", count_, what_, fmt::join(examples_, ", "), count_ > examples_.size() ? ", ..." : "");
}

std::filesystem::path resolve_under(const std::filesystem::path& root, const std::string& p) {
  std::filesystem::path q(p);
  if (q.is_absolute()) return q.lexically_normal();
  return (root / q).lexically_normal();
}

void require_directory(const std::filesystem::path& root, const std::string& source, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec))
    throw DataError(fmt::format("{}: {} '{}' {}", source, what, root.string(),
                                std::filesystem::exists(root, ec) ? "is not a directory" : "does not exist"));
}

std::string split_summary(const std::vector<Sample>& samples) {
  std::map<std::string, size_t> counts;
  for (const auto& s : samples) counts[s.split]++;
  std::vector<std::string> parts;
  for (const char* k : {"train", "val", "test"})
    if (counts.count(k)) parts.push_back(fmt::format("{} {}", k, counts[k]));
  for (const auto& [k, n] : counts)
    if (k != "train" && k != "val" && k != "test") parts.push_back(fmt::format("{} {}", k, n));
  return fmt::format("{}", fmt::join(parts, ", "));
}

void finalize_samples(std::vector<Sample>& samples, const SourceCommonOptions& o, const std::string& source) {
  if (o.max_per_split > 0 || o.limit > 0) {
    std::map<std::string, int64_t> per;
    std::vector<Sample> kept;
    for (auto& s : samples) {
      if (o.limit > 0 && static_cast<int64_t>(kept.size()) >= o.limit) break;
      if (o.max_per_split > 0 && per[s.split] >= o.max_per_split) continue;
      per[s.split]++;
      kept.push_back(std::move(s));
    }
    log::info("{}: limit={} max_per_split={} keep {} of {} items", source, o.limit, o.max_per_split, kept.size(),
              samples.size());
    samples = std::move(kept);
  }
  ProblemList missing("image files are missing");
  std::vector<Sample> present;
  present.reserve(samples.size());
  for (auto& s : samples) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(s.image, ec)) {
      present.push_back(std::move(s));
    } else {
      missing.add(s.image.string());
    }
  }
  if (!missing.empty()) {
    if (o.strict)
      throw DataError(fmt::format("{}: {} (strict = true; set strict = false to skip them)", source, missing.summary()));
    log::warn("{}: skipped {} of {} items: {}", source, missing.count(), samples.size(), missing.summary());
  }
  samples = std::move(present);
  std::set<std::string> ids;
  ProblemList dups("duplicate ids");
  for (const auto& s : samples)
    if (!ids.insert(s.id).second) dups.add(s.id);
  if (!dups.empty()) throw DataError(fmt::format("{}: ids must be unique, but found {}", source, dups.summary()));
  if (samples.empty())
    throw DataError(fmt::format("{}: no images left{}", source,
                                missing.empty() ? "" : fmt::format(" ({} missing)", missing.count())));
  log::info("{}: {} images ({})", source, samples.size(), split_summary(samples));
  std::set<std::string> splits;
  for (const auto& s : samples) splits.insert(s.split);
  for (const char* k : {"train", "val", "test"})
    if (!splits.count(k)) log::warn("{}: split '{}' has no images (asking for it is a DataError)", source, k);
}

std::string collapse_whitespace(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = true;
    } else {
      if (space && !out.empty()) out += ' ';
      space = false;
      out += c;
    }
  }
  return out;
}

namespace {

// Length of the well-formed UTF-8 sequence at text[i], or 0 with `bad` = the length of its maximal ill-formed
// subpart (>= 1): Unicode Table 3-7 gives the allowed range of each byte after the lead byte.
size_t utf8_sequence(const std::string& text, size_t i, size_t& bad) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) len = 3, lo = 0xA0;
  else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) len = 3;
  else if (c == 0xED) len = 3, hi = 0x9F;  // no surrogates
  else if (c == 0xF0) len = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) len = 4, hi = 0x8F;  // <= U+10FFFF
  if (len == 0) {                          // 80..C1, F5..FF: never a lead byte
    bad = 1;
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    const bool ok = i + k < text.size() && (k == 1 ? b(i + k) >= lo && b(i + k) <= hi : (b(i + k) & 0xC0) == 0x80);
    if (!ok) {
      bad = k;
      return 0;
    }
  }
  return len;
}

}  // namespace

size_t first_invalid_utf8(const std::string& text) {
  size_t i = 0, bad = 0;
  while (i < text.size()) {
    const size_t n = utf8_sequence(text, i, bad);
    if (n == 0) return i;
    i += n;
  }
  return std::string::npos;
}

std::string replace_invalid_utf8(const std::string& text, size_t* replaced) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0, bad = 0, count = 0;
  while (i < text.size()) {
    const size_t n = utf8_sequence(text, i, bad);
    if (n > 0) {
      out.append(text, i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++count;
      i += bad;
    }
  }
  if (replaced) *replaced = count;
  return out;
}

std::string TextCheck::operator()(std::string text, const std::string& where) {
  const size_t at = first_invalid_utf8(text);
  if (at == std::string::npos) return text;
  std::string bytes;
  for (size_t k = at; k < text.size() && k < at + 4; ++k)
    bytes += fmt::format("{}{:02x}", k > at ? " " : "", static_cast<unsigned char>(text[k]));
  const std::string what = fmt::format("{}: invalid UTF-8 at byte offset {} (bytes {})", where, at, bytes);
  if (strict_)
    throw DataError(
        fmt::format("{}; text must be UTF-8 (strict = true; set strict = false to replace invalid "
                    "sequences with U+FFFD)",
                    what));
  size_t n = 0;
  std::string fixed = replace_invalid_utf8(text, &n);
  if (fields_ == 0) first_ = what;
  ++fields_;
  sequences_ += n;
  return fixed;
}

void TextCheck::report() const {
  if (fields_ == 0) return;
  log::warn(
      "{}: {} text field(s) held invalid UTF-8; {} invalid sequence(s) replaced with U+FFFD; first: {} (set "
      "strict = true to make this an error)",
      source_, fields_, sequences_, first_);
}

}  // namespace daug::data
