#include <daug/core/config_loader.h>
#include <daug/error.h>
#include <daug/options.h>

#include "test_support.h"

using daug::Check;
using daug::ConfigView;
using daug::testing::expect_error_contains;

namespace {
struct Opts {
  double scale = 100.0;
  int64_t steps = 10;
  int small = 3;
  bool flag = false;
  std::string mode = "ddim";
  std::vector<double> ws{0.5};
  std::vector<std::string> names{"a"};
  std::vector<std::vector<std::string>> groups{{"x"}};
  void visit(daug::OptionVisitor& v) {
    v("scale", scale, "guidance scale", Check::at_least(0));
    v("steps", steps, "number of steps", Check::range(1, 1000));
    v("small", small, "an int");
    v("flag", flag, "a flag");
    v("mode", mode, "encode mode", Check::choice({"ddim", "qsample"}));
    v("ws", ws, "weights", Check::range(0, 1));
    v("names", names, "names", Check::required_non_empty());
    v("groups", groups, "groups");
  }
};

ConfigView view(const std::string& text) {
  auto doc = daug::core::parse_config(text, "opts.toml");
  return ConfigView(doc, "t");
}
}  // namespace

TEST(Options, ReadsTypedValuesAndKeepsDefaults) {
  auto o = daug::read_options<Opts>(view("[t]\nplugin = \"p\"\nscale = 5\nmode = \"qsample\"\nws = [0, 1]\n"
                                        "groups = [[\"a\", \"b\"], [\"c\"]]\nflag = true\n"));
  EXPECT_DOUBLE_EQ(o.scale, 5.0);  // integer widens to float
  EXPECT_EQ(o.steps, 10);
  EXPECT_EQ(o.mode, "qsample");
  EXPECT_EQ(o.ws, (std::vector<double>{0, 1}));
  EXPECT_EQ(o.groups.size(), 2u);
  EXPECT_TRUE(o.flag);
}

TEST(Options, UnknownKeyNamesLocationKnownKeysAndSuggestion) {
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nscal = 5.0\n")); },
                        {"opts.toml:2:8", "unknown key 'scal' in [t]", "known keys: scale, steps, small, flag, mode",
                         "Did you mean 'scale'?"});
}

TEST(Options, WrongTypeIsAnError) {
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nscale = \"big\"\n")); },
                        {"opts.toml:2:9", "[t].scale: expected a float, but got string"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nsteps = 2.5\n")); },
                        {"[t].steps: expected an integer, but got float"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nnames = [\"a\", 3]\n")); },
                        {"[t].names[1]: expected an array of strings, but got integer"});
}

TEST(Options, ChecksRangesAndChoices) {
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nscale = -1.0\n")); },
                        {"opts.toml:2:9", "[t].scale must be >= 0, but got -1.0"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nsteps = 0\n")); }, {"must be in [1, 1000], but got 0"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nmode = \"ddpm\"\n")); },
                        {"[t].mode must be one of: ddim, qsample, but got 'ddpm'"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nws = [0.5, 2]\n")); }, {"[t].ws element"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nnames = []\n")); }, {"must not be empty"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nsmall = 9999999999\n")); }, {"[t].small must be"});
}

TEST(Options, DescribeListsEveryOptionWithDefault) {
  auto info = daug::describe_options<Opts>();
  ASSERT_EQ(info.size(), 8u);
  EXPECT_EQ(info[0].key, "scale");
  EXPECT_EQ(info[0].type, "float");
  EXPECT_EQ(info[0].default_value, "100.0");
  EXPECT_EQ(info[0].constraint, ">= 0");
  EXPECT_EQ(info[4].default_value, "'ddim'");
  EXPECT_EQ(info[6].type, "array of strings");
}

TEST(Options, DumpRoundTrips) {
  Opts o;
  o.scale = 7.25;
  o.mode = "qsample";
  o.groups = {{"a", "b"}};
  std::string text = "[t]\n" + daug::dump_options(o);
  auto back = daug::read_options<Opts>(view(text));
  EXPECT_DOUBLE_EQ(back.scale, 7.25);
  EXPECT_EQ(back.mode, "qsample");
  EXPECT_EQ(back.groups, o.groups);
}

TEST(Options, DumpScopesLeaveOutRuntimeAndSamplingOptions) {
  struct Scoped {
    int64_t layers = 2, workers = 3;
    double scale = 1.5;
    void visit(daug::OptionVisitor& v) {
      v("layers", layers, "model");
      v("scale", scale, "sampling", Check::at_least(0).for_sampling());
      v("workers", workers, "runtime", Check::at_least(0).for_runtime());
    }
  } o;
  EXPECT_EQ(daug::dump_options(o), "layers = 2\nscale = 1.5\nworkers = 3\n");
  EXPECT_EQ(daug::dump_options(o, daug::OptionScope::everything), "layers = 2\nscale = 1.5\nworkers = 3\n");
  EXPECT_EQ(daug::dump_options(o, daug::OptionScope::results), "layers = 2\nscale = 1.5\n");
  EXPECT_EQ(daug::dump_options(o, daug::OptionScope::model), "layers = 2\n");
  // Both marks together: out of every key.
  EXPECT_TRUE(Check::at_least(1).for_sampling().for_runtime().runtime);
  EXPECT_TRUE(Check::at_least(1).for_sampling().for_runtime().sampling);
}

TEST(Options, CheckOptionsValidatesCodeBuiltStructs) {
  Opts o;
  o.scale = -3;
  expect_error_contains([&] { daug::check_options(o, "[guidance]"); }, {"[guidance].scale must be >= 0"});
}

// ------------------------------------------------------------------------------------------------ enums, optionals

namespace {
enum class Encode { ddim_inversion, q_sample };
enum class Sign { plus = 1, minus = -1 };
const auto kEncode = daug::choices<Encode>({{"ddim", Encode::ddim_inversion}, {"qsample", Encode::q_sample}});
const auto kSign = daug::choices<Sign>({{"+", Sign::plus}, {"-", Sign::minus}});

struct EnumOpts {
  Encode encode = Encode::ddim_inversion;
  Sign direction = Sign::plus;
  std::optional<bool> norm;
  std::optional<int64_t> size;
  std::optional<double> eta;
  std::optional<std::string> name;
  std::optional<int64_t> heads = 4;  // an optional with a set default
  void visit(daug::OptionVisitor& v) {
    v("encode", encode, "how x0 reaches level L", kEncode);
    v("direction", direction, "toward or away", kSign);
    v("norm", norm, "override the preset's norm");
    v("size", size, "override the preset's size", Check::at_least(1));
    v("eta", eta, "DDIM eta", Check::range(0, 1));
    v("name", name, "a name", Check::choice({"a", "b"}));
    v("heads", heads, "heads", Check::at_least(1));
  }
};
}  // namespace

TEST(Options, EnumReadsNamesAndKeepsDefault) {
  auto o = daug::read_options<EnumOpts>(view("[t]\nencode = \"qsample\"\n"));
  EXPECT_EQ(o.encode, Encode::q_sample);
  EXPECT_EQ(o.direction, Sign::plus);
  o = daug::read_options<EnumOpts>(view("[t]\ndirection = \"-\"\n"));
  EXPECT_EQ(o.encode, Encode::ddim_inversion);
  EXPECT_EQ(o.direction, Sign::minus);
  EXPECT_EQ(static_cast<int>(o.direction), -1);
}

TEST(Options, EnumWrongNameNamesLocationKeyValueAndAllowedNames) {
  expect_error_contains([] { daug::read_options<EnumOpts>(view("[t]\nencode = \"ddpm\"\n")); },
                        {"opts.toml:2:10", "[t].encode must be one of: ddim, qsample, but got 'ddpm'"});
  expect_error_contains([] { daug::read_options<EnumOpts>(view("[t]\nencode = 1\n")); },
                        {"opts.toml:2:10", "[t].encode: expected a string, but got integer"});
}

TEST(Options, EnumDescribeShowsDefaultNameAndAllowedNames) {
  auto info = daug::describe_options<EnumOpts>();
  ASSERT_EQ(info.size(), 7u);
  EXPECT_EQ(info[0].key, "encode");
  EXPECT_EQ(info[0].type, "string");
  EXPECT_EQ(info[0].default_value, "'ddim'");
  EXPECT_EQ(info[0].constraint, "one of: ddim, qsample");
  EXPECT_EQ(info[1].default_value, "'+'");
  EXPECT_EQ(info[1].constraint, "one of: +, -");
}

TEST(Options, EnumDumpWritesNameAndRoundTrips) {
  EnumOpts o;
  o.encode = Encode::q_sample;
  o.direction = Sign::minus;
  const std::string dump = daug::dump_options(o);
  EXPECT_NE(dump.find("encode = 'qsample'\n"), std::string::npos) << dump;
  EXPECT_NE(dump.find("direction = '-'\n"), std::string::npos) << dump;
  auto back = daug::read_options<EnumOpts>(view("[t]\n" + dump));
  EXPECT_EQ(back.encode, Encode::q_sample);
  EXPECT_EQ(back.direction, Sign::minus);
}

TEST(Options, EnumValueOutsideTheTableIsAProgrammingError) {
  EnumOpts o;
  o.encode = static_cast<Encode>(7);
  expect_error_contains([&] { daug::dump_options(o); }, {"enum value 7 has no name", "ddim, qsample"});
  EXPECT_EQ(kEncode.name(Encode::q_sample), "qsample");
  EXPECT_EQ(kEncode.value("ddim"), Encode::ddim_inversion);
}

TEST(Options, OptionalAbsentIsUnsetAndPresentIsSet) {
  auto o = daug::read_options<EnumOpts>(view("[t]\nplugin = \"p\"\n"));
  EXPECT_FALSE(o.norm.has_value());
  EXPECT_FALSE(o.size.has_value());
  EXPECT_FALSE(o.eta.has_value());
  EXPECT_FALSE(o.name.has_value());
  EXPECT_EQ(o.heads, std::optional<int64_t>(4));
  o = daug::read_options<EnumOpts>(view("[t]\nnorm = false\nsize = 64\neta = 0\nname = \"b\"\nheads = 2\n"));
  EXPECT_EQ(o.norm, std::optional<bool>(false));
  EXPECT_EQ(o.size, std::optional<int64_t>(64));
  EXPECT_EQ(o.eta, std::optional<double>(0.0));  // integer widens to float
  EXPECT_EQ(o.name, std::optional<std::string>("b"));
  EXPECT_EQ(o.heads, std::optional<int64_t>(2));
}

TEST(Options, OptionalWrongTypeOrValueIsAnError) {
  expect_error_contains([] { daug::read_options<EnumOpts>(view("[t]\nnorm = \"true\"\n")); },
                        {"opts.toml:2:8", "[t].norm: expected a boolean (true/false), but got string"});
  expect_error_contains([] { daug::read_options<EnumOpts>(view("[t]\nsize = 0\n")); },
                        {"opts.toml:2:8", "[t].size must be >= 1, but got 0"});
  expect_error_contains([] { daug::read_options<EnumOpts>(view("[t]\neta = 2.0\n")); },
                        {"[t].eta must be in [0, 1], but got 2.0"});
  expect_error_contains([] { daug::read_options<EnumOpts>(view("[t]\nname = \"c\"\n")); },
                        {"[t].name must be one of: a, b, but got 'c'"});
  // Optional keys are known keys: a misspelling still gets a suggestion.
  expect_error_contains([] { daug::read_options<EnumOpts>(view("[t]\nsise = 3\n")); },
                        {"unknown key 'sise'", "Did you mean 'size'?"});
}

TEST(Options, OptionalDescribeShowsUnset) {
  auto info = daug::describe_options<EnumOpts>();
  EXPECT_EQ(info[2].type, "optional boolean");
  EXPECT_EQ(info[2].default_value, "unset");
  EXPECT_EQ(info[3].type, "optional integer");
  EXPECT_EQ(info[3].default_value, "unset");
  EXPECT_EQ(info[3].constraint, ">= 1");
  EXPECT_EQ(info[4].type, "optional float");
  EXPECT_EQ(info[5].type, "optional string");
  EXPECT_EQ(info[6].default_value, "4");
}

TEST(Options, OptionalDumpWritesOnlySetValuesAndRoundTrips) {
  EnumOpts unset;
  unset.heads.reset();
  const std::string empty = daug::dump_options(unset);
  EXPECT_EQ(empty.find("norm"), std::string::npos) << empty;
  EXPECT_EQ(empty.find("size"), std::string::npos) << empty;
  EXPECT_EQ(empty.find("heads"), std::string::npos) << empty;
  auto back = daug::read_options<EnumOpts>(view("[t]\n" + empty));
  EXPECT_FALSE(back.norm || back.size || back.eta || back.name);
  // TOML cannot spell "unset": an optional whose default is set reads back as that default (see options.h).
  EXPECT_EQ(back.heads, std::optional<int64_t>(4));

  EnumOpts o;
  o.norm = true;
  o.size = 128;
  o.eta = 0.25;
  o.name = "a";
  const std::string dump = daug::dump_options(o);
  EXPECT_NE(dump.find("norm = true\n"), std::string::npos) << dump;
  EXPECT_NE(dump.find("size = 128\n"), std::string::npos) << dump;
  back = daug::read_options<EnumOpts>(view("[t]\n" + dump));
  EXPECT_EQ(back.norm, o.norm);
  EXPECT_EQ(back.size, o.size);
  EXPECT_EQ(back.eta, o.eta);
  EXPECT_EQ(back.name, o.name);
  EXPECT_EQ(back.heads, o.heads);
}

TEST(Options, CheckOptionsValidatesSetOptionals) {
  EnumOpts o;
  daug::check_options(o, "[t]");  // unset values are not checked
  o.size = 0;
  expect_error_contains([&] { daug::check_options(o, "[generator]"); }, {"[generator].size must be >= 1, but got 0"});
}

// TOML spells inf and nan; a float option holding either is refused where it was written (scale = inf used to pass
// ">= 0" and fail mid-run as NaNs in the sampler).
TEST(Options, NonFiniteFloatsAreRefusedWithLocation) {
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nscale = inf\n")); },
                        {"opts.toml:2:9: [t].scale must be finite and >= 0, but got inf"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nscale = -inf\n")); },
                        {"opts.toml:2:9: [t].scale must be finite", "but got -inf"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nscale = nan\n")); },
                        {"opts.toml:2:9: [t].scale must be finite", "but got nan"});
  expect_error_contains([] { daug::read_options<Opts>(view("[t]\nws = [0.5, inf]\n")); },
                        {"opts.toml:2:6: [t].ws element [inf] must be finite and in [0, 1]"});
  Opts in_code;
  in_code.scale = std::numeric_limits<double>::infinity();
  expect_error_contains([&] { daug::check_options(in_code, "[t]"); }, {"[t].scale must be finite and >= 0"});
}
