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
/// Reading rejects unknown keys, wrong types and values outside the Check, each with file:line:col,
/// the key, and the known keys. A key absent from TOML keeps the struct's default (that is the documented
/// default shown by `daug plugins describe`, not a silent fallback: a wrong *type* is always an error).
#include <daug/api.h>
#include <daug/config_view.h>

#include <cstdint>
#include <limits>
#include <string>
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

  static Check at_least(double lo) { Check c; c.min = lo; return c; }
  static Check greater_than(double lo) { Check c; c.min = lo; c.min_exclusive = true; return c; }
  static Check range(double lo, double hi) { Check c; c.min = lo; c.max = hi; return c; }
  static Check choice(std::vector<std::string> values) { Check c; c.one_of = std::move(values); return c; }
  static Check required_non_empty() { Check c; c.non_empty = true; return c; }
  static Check sampling_only() { Check c; c.sampling = true; return c; }
  /// This check, and the option only affects sampling (see `sampling`).
  Check for_sampling() const { Check c = *this; c.sampling = true; return c; }
  /// Human-readable form: ">= 0", "in [0, 1]", "one of: a, b".
  std::string str() const;
};

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

  template <class T>
  void operator()(const char* key, T& v, const char* doc, const Check& c = Check{}) {
    field(key, v, doc, c);
  }
  /// `int` fields are read as 64-bit integers and range-checked into int.
  void operator()(const char* key, int& v, const char* doc, const Check& c = Check{});
};

/// Description of one option, for `daug plugins describe`.
struct DAUG_SDK_API OptionInfo {
  std::string key;
  std::string type;           ///< "float", "integer", "string", "boolean", "array of ..."
  std::string default_value;  ///< as TOML
  std::string doc;
  std::string constraint;     ///< Check::str(), may be empty
  bool sampling = false;      ///< Check::sampling
};

namespace detail {
/// Reads every visited field from `view`; throws ConfigError on wrong types, failed checks, and (after the
/// visit) on keys the visit never asked for. `ignored_keys` (e.g. "plugin") are allowed without a field.
DAUG_SDK_API void read_fields(const ConfigView& view, const std::vector<std::string>& ignored_keys,
                              void (*visit)(void* opts, OptionVisitor& v), void* opts);
DAUG_SDK_API std::vector<OptionInfo> describe_fields(void (*visit)(void* opts, OptionVisitor& v), void* opts);
/// `model_only`: leave out the options marked Check::sampling.
DAUG_SDK_API std::string dump_fields(void (*visit)(void* opts, OptionVisitor& v), void* opts, bool model_only = false);
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

/// Serialises the current values of `o` as TOML key = value lines (`model_only`: without sampling options).
template <class Opts>
std::string dump_options(Opts& o, bool model_only = false) {
  return detail::dump_fields(&detail::visit_thunk<Opts>, &o, model_only);
}

}  // namespace daug
