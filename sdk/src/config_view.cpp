// ConfigView over the resolved toml++ document, and the Options reader/describer/dumper.
#include <daug/config_view.h>
#include <daug/detail/config_document.h>
#include <daug/error.h>
#include <daug/options.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace daug {

std::string SourceLocation::str() const {
  if (file.empty()) return "<unknown>";
  if (line <= 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

const toml::node* ConfigDocument::find(const std::string& dotted) const {
  if (dotted.empty()) return &root;
  const toml::node* cur = &root;
  size_t start = 0;
  while (cur) {
    size_t p = dotted.find('.', start);
    std::string part = dotted.substr(start, p == std::string::npos ? std::string::npos : p - start);
    const auto* tbl = cur->as_table();
    if (!tbl) return nullptr;
    cur = tbl->get(part);
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return cur;
}

namespace {

std::string join_path(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

std::string type_name(const toml::node* n) {
  if (!n) return "missing";
  switch (n->type()) {
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::array: return "array";
    case toml::node_type::table: return "table";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "none";
  }
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> d(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) d[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t prev = d[0];
    d[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t tmp = d[j];
      d[j] = std::min({d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
      prev = tmp;
    }
  }
  return d[b.size()];
}

}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = 3;  // suggest only close matches
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

ConfigView::ConfigView(std::shared_ptr<const ConfigDocument> doc, std::string path)
    : doc_(std::move(doc)), path_(std::move(path)) {}

std::string ConfigView::label() const { return path_.empty() ? "[root]" : "[" + path_ + "]"; }

bool ConfigView::exists() const {
  const auto* n = doc_->find(path_);
  return n && n->is_table();
}

bool ConfigView::has(const std::string& key) const {
  const auto* n = doc_->find(path_);
  return n && n->is_table() && n->as_table()->contains(key);
}

std::vector<std::string> ConfigView::keys() const {
  std::vector<std::string> out;
  const auto* n = doc_->find(path_);
  if (n && n->is_table())
    for (const auto& [k, v] : *n->as_table()) out.emplace_back(k.str());
  return out;
}

SourceLocation ConfigView::location(const std::string& key) const {
  std::string p = key.empty() ? path_ : join_path(path_, key);
  auto it = doc_->locations.find(p);
  if (it != doc_->locations.end()) return it->second;
  // Fall back to the table, then the file.
  it = doc_->locations.find(path_);
  if (it != doc_->locations.end()) return it->second;
  return SourceLocation{doc_->main_file, 0, 0};
}

std::string ConfigView::type_of(const std::string& key) const {
  const auto* n = doc_->find(path_);
  if (!n || !n->is_table()) return "missing";
  return type_name(n->as_table()->get(key));
}

namespace {
const toml::node& need(const ConfigView& v, const ConfigDocument& doc, const std::string& key, const char* want) {
  const auto* t = doc.find(v.path());
  const toml::node* n = (t && t->is_table()) ? t->as_table()->get(key) : nullptr;
  if (!n)
    throw ConfigError(fmt::format("{}: {}.{}: expected {} but the key is missing", v.location(key).str(), v.label(),
                                  key, want));
  return *n;
}
[[noreturn]] void wrong(const ConfigView& v, const std::string& key, const char* want, const toml::node& n) {
  throw ConfigError(
      fmt::format("{}: {}.{}: expected {}, but got {}", v.location(key).str(), v.label(), key, want, type_name(&n)));
}
}  // namespace

std::string ConfigView::get_string(const std::string& key) const {
  const auto& n = need(*this, *doc_, key, "a string");
  if (auto s = n.value<std::string>(); s && n.is_string()) return *s;
  wrong(*this, key, "a string", n);
}

int64_t ConfigView::get_int(const std::string& key) const {
  const auto& n = need(*this, *doc_, key, "an integer");
  if (n.is_integer()) return n.as_integer()->get();
  wrong(*this, key, "an integer", n);
}

double ConfigView::get_double(const std::string& key) const {
  const auto& n = need(*this, *doc_, key, "a float");
  if (n.is_floating_point()) return n.as_floating_point()->get();
  if (n.is_integer()) return static_cast<double>(n.as_integer()->get());
  wrong(*this, key, "a float", n);
}

bool ConfigView::get_bool(const std::string& key) const {
  const auto& n = need(*this, *doc_, key, "a boolean");
  if (n.is_boolean()) return n.as_boolean()->get();
  wrong(*this, key, "a boolean (true/false)", n);
}

namespace {
template <class F>
void each_element(const ConfigView& v, const toml::node& n, const std::string& key, const char* want, F&& f) {
  if (!n.is_array()) wrong(v, key, want, n);
  size_t i = 0;
  for (const auto& el : *n.as_array()) {
    if (!f(el))
      throw ConfigError(fmt::format("{}: {}.{}[{}]: expected {}, but got {}", v.location(key).str(), v.label(), key,
                                    i, want, type_name(&el)));
    ++i;
  }
}
}  // namespace

std::vector<std::string> ConfigView::get_string_array(const std::string& key) const {
  std::vector<std::string> out;
  each_element(*this, need(*this, *doc_, key, "an array of strings"), key, "an array of strings",
               [&](const toml::node& el) {
                 if (!el.is_string()) return false;
                 out.push_back(el.as_string()->get());
                 return true;
               });
  return out;
}

std::vector<int64_t> ConfigView::get_int_array(const std::string& key) const {
  std::vector<int64_t> out;
  each_element(*this, need(*this, *doc_, key, "an array of integers"), key, "an array of integers",
               [&](const toml::node& el) {
                 if (!el.is_integer()) return false;
                 out.push_back(el.as_integer()->get());
                 return true;
               });
  return out;
}

std::vector<double> ConfigView::get_double_array(const std::string& key) const {
  std::vector<double> out;
  each_element(*this, need(*this, *doc_, key, "an array of numbers"), key, "an array of numbers",
               [&](const toml::node& el) {
                 if (el.is_floating_point()) out.push_back(el.as_floating_point()->get());
                 else if (el.is_integer()) out.push_back(static_cast<double>(el.as_integer()->get()));
                 else return false;
                 return true;
               });
  return out;
}

std::vector<std::vector<std::string>> ConfigView::get_string_matrix(const std::string& key) const {
  std::vector<std::vector<std::string>> out;
  each_element(*this, need(*this, *doc_, key, "an array of arrays of strings"), key, "an array of arrays of strings",
               [&](const toml::node& el) {
                 if (!el.is_array()) return false;
                 std::vector<std::string> row;
                 for (const auto& s : *el.as_array()) {
                   if (!s.is_string()) return false;
                   row.push_back(s.as_string()->get());
                 }
                 out.push_back(std::move(row));
                 return true;
               });
  return out;
}

ConfigView ConfigView::table(const std::string& key) const {
  const auto& n = need(*this, *doc_, key, "a table");
  if (!n.is_table()) wrong(*this, key, "a table", n);
  return ConfigView(doc_, join_path(path_, key));
}

namespace {
void sorted_toml(const toml::table& t, std::ostringstream& os, const std::string& prefix) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : t) keys.emplace_back(k.str());
  std::sort(keys.begin(), keys.end());
  for (const auto& k : keys) {
    const auto* n = t.get(k);
    if (n->is_table()) continue;
    os << toml::table{{k, *n}};
    os << "\n";
  }
  for (const auto& k : keys) {
    const auto* n = t.get(k);
    if (!n->is_table()) continue;
    std::string p = prefix.empty() ? k : prefix + "." + k;
    os << "[" << p << "]\n";
    sorted_toml(*n->as_table(), os, p);
  }
}
}  // namespace

std::string ConfigView::to_toml() const {
  const auto* n = doc_->find(path_);
  if (!n || !n->is_table()) return {};
  std::ostringstream os;
  sorted_toml(*n->as_table(), os, path_);
  return os.str();
}

// ---------------------------------------------------------------------------------------------------------------
// Options

OptionVisitor::~OptionVisitor() = default;

void OptionVisitor::operator()(const char* key, int& v, const char* doc, const Check& c) {
  int64_t wide = v;
  Check bounded = c;
  bounded.min = std::max(c.min, static_cast<double>(std::numeric_limits<int>::min()));
  bounded.max = std::min(c.max, static_cast<double>(std::numeric_limits<int>::max()));
  field(key, wide, doc, bounded);
  v = static_cast<int>(wide);
}

std::string Check::str() const {
  std::vector<std::string> parts;
  bool lo = std::isfinite(min), hi = std::isfinite(max);
  if (lo && hi) parts.push_back(fmt::format("in {}{}, {}]", min_exclusive ? "(" : "[", min, max));
  else if (lo) parts.push_back(fmt::format("{} {}", min_exclusive ? ">" : ">=", min));
  else if (hi) parts.push_back(fmt::format("<= {}", max));
  if (!one_of.empty()) parts.push_back(fmt::format("one of: {}", fmt::join(one_of, ", ")));
  if (non_empty) parts.push_back("non-empty");
  return fmt::format("{}", fmt::join(parts, "; "));
}

namespace {

std::string toml_repr(const std::string& s) {
  std::ostringstream os;
  os << toml::value<std::string>(s);
  return os.str();
}
std::string toml_repr(double d) {
  std::ostringstream os;
  os << toml::value<double>(d);
  return os.str();
}
template <class T>
std::string toml_repr_vec(const std::vector<T>& v) {
  std::vector<std::string> parts;
  for (const auto& x : v) {
    if constexpr (std::is_same_v<T, std::string>) parts.push_back(toml_repr(x));
    else if constexpr (std::is_same_v<T, double>) parts.push_back(toml_repr(x));
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) parts.push_back(toml_repr_vec(x));
    else parts.push_back(fmt::format("{}", x));
  }
  return fmt::format("[{}]", fmt::join(parts, ", "));
}

/// Validates a value against a Check; returns an empty string when it holds, else the reason.
std::string violates(double x, const Check& c) {
  // TOML spells inf and nan; no option means either (an infinite guidance scale only fails later, as NaNs mid-run).
  if (!std::isfinite(x))
    return c.str().empty() ? "must be a finite number" : fmt::format("must be finite and {}", c.str());
  bool bad_lo = c.min_exclusive ? !(x > c.min) : !(x >= c.min);
  if (bad_lo || !(x <= c.max) || std::isnan(x)) return fmt::format("must be {}", c.str());
  return {};
}
std::string violates(const std::string& s, const Check& c) {
  if (c.non_empty && s.empty()) return "must not be empty";
  if (!c.one_of.empty() && std::find(c.one_of.begin(), c.one_of.end(), s) == c.one_of.end())
    return fmt::format("must be one of: {}", fmt::join(c.one_of, ", "));
  return {};
}
template <class T>
std::string violates_vec(const std::vector<T>& v, const Check& c) {
  if (c.non_empty && v.empty()) return "must not be empty";
  for (const auto& x : v) {
    if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      (void)x;
    } else {
      std::string r;
      if constexpr (std::is_same_v<T, std::string>) r = violates(x, Check{c.min, c.max, c.min_exclusive, c.one_of, false});
      else r = violates(static_cast<double>(x), c);
      if (!r.empty()) return fmt::format("element {} {}", toml_repr_vec(std::vector<T>{x}), r);
    }
  }
  return {};
}

class Reader final : public OptionVisitor {
 public:
  explicit Reader(const ConfigView& v) : view_(v) {}
  std::vector<std::string> known;

  void field(const char* k, bool& v, const char*, const Check&) override {
    note(k);
    if (view_.has(k)) v = view_.get_bool(k);
  }
  void field(const char* k, int64_t& v, const char*, const Check& c) override {
    note(k);
    if (!view_.has(k)) return;
    v = view_.get_int(k);
    report(k, violates(static_cast<double>(v), c), fmt::format("{}", v));
  }
  void field(const char* k, double& v, const char*, const Check& c) override {
    note(k);
    if (!view_.has(k)) return;
    v = view_.get_double(k);
    report(k, violates(v, c), toml_repr(v));
  }
  void field(const char* k, std::string& v, const char*, const Check& c) override {
    note(k);
    if (!view_.has(k)) return;
    v = view_.get_string(k);
    report(k, violates(v, c), toml_repr(v));
  }
  void field(const char* k, std::vector<int64_t>& v, const char*, const Check& c) override {
    note(k);
    if (!view_.has(k)) return;
    v = view_.get_int_array(k);
    report(k, violates_vec(v, c), toml_repr_vec(v));
  }
  void field(const char* k, std::vector<double>& v, const char*, const Check& c) override {
    note(k);
    if (!view_.has(k)) return;
    v = view_.get_double_array(k);
    report(k, violates_vec(v, c), toml_repr_vec(v));
  }
  void field(const char* k, std::vector<std::string>& v, const char*, const Check& c) override {
    note(k);
    if (!view_.has(k)) return;
    v = view_.get_string_array(k);
    report(k, violates_vec(v, c), toml_repr_vec(v));
  }
  void field(const char* k, std::vector<std::vector<std::string>>& v, const char*, const Check& c) override {
    note(k);
    if (!view_.has(k)) return;
    v = view_.get_string_matrix(k);
    report(k, violates_vec(v, c), toml_repr_vec(v));
  }
  void field(const char* k, std::optional<bool>& v, const char*, const Check&) override {
    note(k);
    if (view_.has(k)) v = view_.get_bool(k);
  }
  void field(const char* k, std::optional<int64_t>& v, const char* d, const Check& c) override { opt(k, v, d, c); }
  void field(const char* k, std::optional<double>& v, const char* d, const Check& c) override { opt(k, v, d, c); }
  void field(const char* k, std::optional<std::string>& v, const char* d, const Check& c) override { opt(k, v, d, c); }

 private:
  template <class T>
  void opt(const char* k, std::optional<T>& v, const char* d, const Check& c) {
    if (!view_.has(k)) {
      note(k);
      return;
    }
    T x{};
    field(k, x, d, c);  // notes k, reads and checks
    v = std::move(x);
  }
  void note(const char* k) { known.emplace_back(k); }
  void report(const char* k, const std::string& why, const std::string& got) {
    if (why.empty()) return;
    throw ConfigError(
        fmt::format("{}: {}.{} {}, but got {}", view_.location(k).str(), view_.label(), k, why, got));
  }
  const ConfigView& view_;
};

class Describer final : public OptionVisitor {
 public:
  std::vector<OptionInfo> out;
  void field(const char* k, bool& v, const char* d, const Check& c) override { add(k, "boolean", v ? "true" : "false", d, c); }
  void field(const char* k, int64_t& v, const char* d, const Check& c) override { add(k, "integer", fmt::format("{}", v), d, c); }
  void field(const char* k, double& v, const char* d, const Check& c) override { add(k, "float", toml_repr(v), d, c); }
  void field(const char* k, std::string& v, const char* d, const Check& c) override { add(k, "string", toml_repr(v), d, c); }
  void field(const char* k, std::vector<int64_t>& v, const char* d, const Check& c) override {
    add(k, "array of integers", toml_repr_vec(v), d, c);
  }
  void field(const char* k, std::vector<double>& v, const char* d, const Check& c) override {
    add(k, "array of floats", toml_repr_vec(v), d, c);
  }
  void field(const char* k, std::vector<std::string>& v, const char* d, const Check& c) override {
    add(k, "array of strings", toml_repr_vec(v), d, c);
  }
  void field(const char* k, std::vector<std::vector<std::string>>& v, const char* d, const Check& c) override {
    add(k, "array of arrays of strings", toml_repr_vec(v), d, c);
  }
  void field(const char* k, std::optional<bool>& v, const char* d, const Check& c) override {
    add(k, "optional boolean", v ? (*v ? "true" : "false") : kUnset, d, c, v.has_value());
  }
  void field(const char* k, std::optional<int64_t>& v, const char* d, const Check& c) override {
    add(k, "optional integer", v ? fmt::format("{}", *v) : kUnset, d, c, v.has_value());
  }
  void field(const char* k, std::optional<double>& v, const char* d, const Check& c) override {
    add(k, "optional float", v ? toml_repr(*v) : kUnset, d, c, v.has_value());
  }
  void field(const char* k, std::optional<std::string>& v, const char* d, const Check& c) override {
    add(k, "optional string", v ? toml_repr(*v) : kUnset, d, c, v.has_value());
  }

  static constexpr const char* kUnset = "unset";
  std::vector<bool> is_set;  ///< parallel to `out`: false for an unset optional (not dumped)

 private:
  void add(const char* k, const char* type, std::string def, const char* doc, const Check& c, bool set = true) {
    out.push_back(OptionInfo{k, type, std::move(def), doc ? doc : "", c.str(), c.sampling, c.runtime});
    is_set.push_back(set);
  }
};

class Checker final : public OptionVisitor {
 public:
  explicit Checker(std::string where) : where_(std::move(where)) {}
  void field(const char*, bool&, const char*, const Check&) override {}
  void field(const char* k, int64_t& v, const char*, const Check& c) override {
    fail(k, violates(static_cast<double>(v), c), fmt::format("{}", v));
  }
  void field(const char* k, double& v, const char*, const Check& c) override { fail(k, violates(v, c), toml_repr(v)); }
  void field(const char* k, std::string& v, const char*, const Check& c) override { fail(k, violates(v, c), toml_repr(v)); }
  void field(const char* k, std::vector<int64_t>& v, const char*, const Check& c) override {
    fail(k, violates_vec(v, c), toml_repr_vec(v));
  }
  void field(const char* k, std::vector<double>& v, const char*, const Check& c) override {
    fail(k, violates_vec(v, c), toml_repr_vec(v));
  }
  void field(const char* k, std::vector<std::string>& v, const char*, const Check& c) override {
    fail(k, violates_vec(v, c), toml_repr_vec(v));
  }
  void field(const char* k, std::vector<std::vector<std::string>>& v, const char*, const Check& c) override {
    fail(k, violates_vec(v, c), toml_repr_vec(v));
  }
  void field(const char*, std::optional<bool>&, const char*, const Check&) override {}
  void field(const char* k, std::optional<int64_t>& v, const char* d, const Check& c) override {
    if (v) field(k, *v, d, c);
  }
  void field(const char* k, std::optional<double>& v, const char* d, const Check& c) override {
    if (v) field(k, *v, d, c);
  }
  void field(const char* k, std::optional<std::string>& v, const char* d, const Check& c) override {
    if (v) field(k, *v, d, c);
  }

 private:
  void fail(const char* k, const std::string& why, const std::string& got) {
    if (!why.empty()) throw ConfigError(fmt::format("{}.{} {}, but got {}", where_, k, why, got));
  }
  std::string where_;
};

}  // namespace

namespace detail {

void read_fields(const ConfigView& view, const std::vector<std::string>& ignored_keys,
                 void (*visit)(void*, OptionVisitor&), void* opts) {
  Reader r(view);
  visit(opts, r);
  for (const auto& key : view.keys()) {
    if (std::find(r.known.begin(), r.known.end(), key) != r.known.end()) continue;
    if (std::find(ignored_keys.begin(), ignored_keys.end(), key) != ignored_keys.end()) continue;
    std::string hint = closest_match(key, r.known);
    throw ConfigError(fmt::format("{}: unknown key '{}' in {}; known keys: {}{}", view.location(key).str(), key,
                                  view.label(), r.known.empty() ? "(none)" : fmt::format("{}", fmt::join(r.known, ", ")),
                                  hint.empty() ? "" : fmt::format(". Did you mean '{}'?", hint)));
  }
}

std::vector<OptionInfo> describe_fields(void (*visit)(void*, OptionVisitor&), void* opts) {
  Describer d;
  visit(opts, d);
  return d.out;
}

std::string dump_fields(void (*visit)(void*, OptionVisitor&), void* opts, OptionScope scope) {
  Describer d;  // the describer's "default" is the current value
  visit(opts, d);
  std::string out;
  for (size_t i = 0; i < d.out.size(); ++i)
    if (d.is_set[i] &&  // unset optionals: absent
        !(scope != OptionScope::everything && d.out[i].runtime) && !(scope == OptionScope::model && d.out[i].sampling))
      out += fmt::format("{} = {}\n", d.out[i].key, d.out[i].default_value);
  return out;
}

void check_fields(void (*visit)(void*, OptionVisitor&), void* opts, const std::string& where) {
  Checker c(where);
  visit(opts, c);
}

}  // namespace detail
}  // namespace daug
