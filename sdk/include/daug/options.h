#pragma once
/// Typed plugin options, declared once and used for reading TOML, validation, `daug plugins describe`
/// and dumping. A plugin's Options struct has one `visit` method:
///
/// Example:
///   struct SoftmaxGuidanceOptions {
///     double scale = 100.0;
///     std::string classifier = "classifier";
///     void visit(daug::OptionVisitor& v) {
///       v("scale", scale, "guidance scale s", daug::Check::at_least(0));
///       v("classifier", classifier, "config table of the noise-aware classifier");
///     }
///   };
///
/// An `enum class` option is one call with its name table (TOML holds the name; the struct holds the enum):
///   enum class Pool { attention, adaptive };
///   inline const auto kPools = daug::choices<Pool>({{"attention", Pool::attention}, {"adaptive", Pool::adaptive}});
///   Pool pool = Pool::attention;
///   v("pool", pool, "pooling of the last feature map", kPools);
///
/// A `std::optional<T>` option (T = bool, int64_t, double, std::string) is unset while its key is absent:
///   std::optional<int64_t> image_size;  // unset = the preset's value
///   v("image_size", image_size, "override the preset's image size", daug::Check::at_least(1));
/// The Check applies to a set value; `describe` shows "unset"; `dump_options` writes only set values. Leave an
/// optional's default unset: TOML cannot spell "unset", so a dump of a reset optional whose default is set
/// would read back as that default.
///
/// Reading rejects unknown keys, wrong types, non-finite floats (TOML's inf and nan) and values outside the Check,
/// each with file:line:col,
/// the key, and the known keys. A key absent from TOML keeps the struct's default (that is the documented
/// default shown by `daug plugins describe`, not a silent fallback: a wrong *type* is always an error).
#include <daug/api.h>
#include <daug/config_view.h>
#include <daug/error.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace daug {

/// Constraint on one option value.
struct DAUG_SDK_API Check {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  std::vector<std::string> one_of;  ///< for strings (and string arrays): allowed values
  bool non_empty = false;           ///< strings and arrays must not be empty
  /// The option changes only how a trained model is used (sampling), not the model: it is left out of the
  /// cache key of stages that train the component (BuildContext::component(table, Use::model)).
  bool sampling = false;
  /// The option changes only how the work runs (threads, prefetching), never its results: it is left out of
  /// every cache key (still written to effective.toml), so changing it reuses cached outputs.
  bool runtime = false;

  static Check at_least(double lo) { Check c; c.min = lo; return c; }
  static Check greater_than(double lo) { Check c; c.min = lo; c.min_exclusive = true; return c; }
  static Check range(double lo, double hi) { Check c; c.min = lo; c.max = hi; return c; }
  static Check choice(std::vector<std::string> values) { Check c; c.one_of = std::move(values); return c; }
  static Check required_non_empty() { Check c; c.non_empty = true; return c; }
  static Check sampling_only() { Check c; c.sampling = true; return c; }
  /// This check, and the option only affects sampling (see `sampling`).
  Check for_sampling() const { Check c = *this; c.sampling = true; return c; }
  /// This check, and the option only affects how the work runs, not its results (see `runtime`).
  Check for_runtime() const { Check c = *this; c.runtime = true; return c; }
  /// Human-readable form: ">= 0", "in [0, 1]", "one of: a, b".
  std::string str() const;
};

/// Name table of an `enum class` option: each value's TOML spelling, in the order `describe` lists them.
/// Build it once (a namespace-scope constant) and pass it to the visitor; `name()` also serves describe().
template <class E>
class Choices {
  static_assert(std::is_enum_v<E>, "daug::Choices<E> needs an enum type");

 public:
  Choices(std::initializer_list<std::pair<const char*, E>> table) {
    for (const auto& [n, e] : table) {
      names_.emplace_back(n);
      values_.push_back(e);
    }
  }
  /// The allowed TOML names.
  const std::vector<std::string>& names() const { return names_; }
  /// The TOML name of `v`; a value missing from the table is a programming error.
  const std::string& name(E v) const {
    for (size_t i = 0; i < values_.size(); ++i)
      if (values_[i] == v) return names_[i];
    throw Error("daug::Choices: enum value " + std::to_string(static_cast<long long>(v)) +
                " has no name in the table (" + joined() + ")");
  }
  /// The value named `name`; throws ConfigError listing the allowed names otherwise.
  E value(const std::string& name) const {
    for (size_t i = 0; i < names_.size(); ++i)
      if (names_[i] == name) return values_[i];
    throw ConfigError("'" + name + "' is not one of: " + joined());
  }

 private:
  std::string joined() const {
    std::string s;
    for (const auto& n : names_) s += (s.empty() ? "" : ", ") + n;
    return s;
  }
  std::vector<std::string> names_;
  std::vector<E> values_;
};

/// Example: `daug::choices<EncodeMode>({{"ddim", EncodeMode::ddim_inversion}, {"qsample", EncodeMode::q_sample}})`.
template <class E>
Choices<E> choices(std::initializer_list<std::pair<const char*, E>> table) {
  return Choices<E>(table);
}

/// Visitor over the fields of an Options struct. Implemented by the SDK (reader, describer, dumper);
/// plugin authors only call it.
class DAUG_SDK_API OptionVisitor {
 public:
  virtual ~OptionVisitor();
  virtual void field(const char* key, bool& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, int64_t& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, double& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, std::string& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, std::vector<int64_t>& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, std::vector<double>& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, std::vector<std::string>& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, std::vector<std::vector<std::string>>& v, const char* doc,
                     const Check& c) = 0;
  /// Optional scalars: an absent key leaves the value unset; `c` applies to a set value.
  virtual void field(const char* key, std::optional<bool>& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, std::optional<int64_t>& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, std::optional<double>& v, const char* doc, const Check& c) = 0;
  virtual void field(const char* key, std::optional<std::string>& v, const char* doc, const Check& c) = 0;

  template <class T>
  void operator()(const char* key, T& v, const char* doc, const Check& c = Check{}) {
    static_assert(!std::is_enum_v<T>, "an enum option needs its name table: v(key, field, doc, daug::choices<E>({...}))");
    field(key, v, doc, c);
  }
  /// `int` fields are read as 64-bit integers and range-checked into int.
  void operator()(const char* key, int& v, const char* doc, const Check& c = Check{});
  /// `enum class` fields are seen by every visitor as a string field restricted to `names.names()`: TOML holds
  /// the name, a wrong name is a ConfigError with file:line:col, the key, the value and the allowed names.
  /// `extra` carries any other flags of the Check (its `one_of` is replaced by the table's names).
  template <class E>
  void operator()(const char* key, E& v, const char* doc, const Choices<E>& names, Check extra = Check{}) {
    extra.one_of = names.names();
    std::string name = names.name(v);
    field(key, name, doc, extra);
    v = names.value(name);
  }
};

/// Description of one option, for `daug plugins describe`.
struct DAUG_SDK_API OptionInfo {
  std::string key;
  std::string type;           ///< "float", "integer", "string", "boolean", "array of ..."
  std::string default_value;  ///< as TOML
  std::string doc;
  std::string constraint;     ///< Check::str(), may be empty
  bool sampling = false;      ///< Check::sampling
  bool runtime = false;       ///< Check::runtime
};

/// Which options a dump of effective options holds.
enum class OptionScope : uint8_t {
  everything,  ///< every option (effective.toml: what actually ran)
  results,     ///< without Check::runtime options (the cache key of a stage, or of a component it uses fully)
  model,       ///< without Check::runtime and Check::sampling options (the key of a stage that trains it)
};

namespace detail {
/// Reads every visited field from `view`; throws ConfigError on wrong types, failed checks, and (after the
/// visit) on keys the visit never asked for. `ignored_keys` (e.g. "plugin") are allowed without a field.
DAUG_SDK_API void read_fields(const ConfigView& view, const std::vector<std::string>& ignored_keys,
                              void (*visit)(void* opts, OptionVisitor& v), void* opts);
DAUG_SDK_API std::vector<OptionInfo> describe_fields(void (*visit)(void* opts, OptionVisitor& v), void* opts);
DAUG_SDK_API std::string dump_fields(void (*visit)(void* opts, OptionVisitor& v), void* opts,
                                     OptionScope scope = OptionScope::everything);
DAUG_SDK_API void check_fields(void (*visit)(void* opts, OptionVisitor& v), void* opts, const std::string& where);
template <class Opts>
void visit_thunk(void* o, OptionVisitor& v) { static_cast<Opts*>(o)->visit(v); }
}  // namespace detail

/// Reads `Opts` from a table. Keys in `ignored_keys` (default: "plugin") are skipped.
template <class Opts>
Opts read_options(const ConfigView& view, const std::vector<std::string>& ignored_keys = {"plugin"}) {
  Opts o{};
  detail::read_fields(view, ignored_keys, &detail::visit_thunk<Opts>, &o);
  return o;
}

/// Checks the values of an Options struct built in code (no TOML) against its Checks.
/// Throws ConfigError naming `where` and the key.
template <class Opts>
void check_options(Opts& o, const std::string& where) {
  detail::check_fields(&detail::visit_thunk<Opts>, &o, where);
}

/// Lists the options of `Opts` with their defaults.
template <class Opts>
std::vector<OptionInfo> describe_options() {
  Opts o{};
  return detail::describe_fields(&detail::visit_thunk<Opts>, &o);
}

/// Serialises the current values of `o` as TOML key = value lines (`scope`: which options).
template <class Opts>
std::string dump_options(Opts& o, OptionScope scope = OptionScope::everything) {
  return detail::dump_fields(&detail::visit_thunk<Opts>, &o, scope);
}

}  // namespace daug
