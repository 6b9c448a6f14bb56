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

TEST(Options, CheckOptionsValidatesCodeBuiltStructs) {
  Opts o;
  o.scale = -3;
  expect_error_contains([&] { daug::check_options(o, "[guidance]"); }, {"[guidance].scale must be >= 0"});
}
