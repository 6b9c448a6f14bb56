#include <daug/core/config_loader.h>
#include <daug/error.h>

#include "test_support.h"

#include <cstdlib>

using daug::ConfigView;
using daug::core::load_config;
using daug::core::parse_config;
using daug::testing::expect_error_contains;
using daug::testing::TempDir;
using daug::testing::write_text;

namespace {
std::shared_ptr<daug::ConfigDocument> load(const TempDir& d, const std::string& file, std::vector<std::string> sets = {}) {
  return load_config(d / file, sets);
}
}  // namespace

TEST(ConfigLoader, ImportsMergeTablesAndReplaceArraysAndScalars) {
  TempDir d;
  write_text(d / "base.toml", "[a]\nplugin = \"p\"\nx = 1\ny = [1, 2, 3]\nz = \"keep\"\n");
  write_text(d / "exp.toml", "imports = [\"base.toml\"]\n[a]\nx = 2\ny = [9]\n");
  auto doc = load(d, "exp.toml");
  ConfigView a(doc, "a");
  EXPECT_EQ(a.get_int("x"), 2);
  EXPECT_EQ(a.get_int_array("y"), (std::vector<int64_t>{9}));
  EXPECT_EQ(a.get_string("z"), "keep");
  EXPECT_EQ(a.location("x").file, (d / "exp.toml").string());
  EXPECT_EQ(a.location("x").line, 3);
  EXPECT_EQ(a.location("z").file, (d / "base.toml").string());
  EXPECT_EQ(a.location("z").line, 5);
}

TEST(ConfigLoader, ChangingPluginReplacesTheTable) {
  TempDir d;
  write_text(d / "base.toml", "[g]\nplugin = \"softmax\"\nlogits = \"auto\"\nscale = 100.0\n");
  write_text(d / "exp.toml", "imports = [\"base.toml\"]\n[g]\nplugin = \"sigmoid\"\nscale = 3.0\n");
  auto doc = load(d, "exp.toml");
  ConfigView g(doc, "g");
  EXPECT_EQ(g.get_string("plugin"), "sigmoid");
  EXPECT_FALSE(g.has("logits")) << "stale key of the old plugin survived";
  EXPECT_DOUBLE_EQ(g.get_double("scale"), 3.0);
  // The same through --set.
  auto doc2 = load(d, "base.toml", {"g.plugin=sigmoid"});
  EXPECT_FALSE(ConfigView(doc2, "g").has("scale"));
  // Setting the same plugin keeps the table.
  auto doc3 = load(d, "base.toml", {"g.plugin=\"softmax\""});
  EXPECT_TRUE(ConfigView(doc3, "g").has("logits"));
}

TEST(ConfigLoader, SetParsesTomlValues) {
  TempDir d;
  write_text(d / "c.toml", "[g]\nscale = 1.0\n");
  auto doc = load(d, "c.toml", {"g.scale=5", "g.name=cuda", "g.list=[1, 2]", "g.s=\"a b\"", "new.t.k=true"});
  ConfigView g(doc, "g");
  EXPECT_EQ(g.type_of("scale"), "integer");
  EXPECT_DOUBLE_EQ(g.get_double("scale"), 5.0);
  EXPECT_EQ(g.get_string("name"), "cuda");
  EXPECT_EQ(g.get_int_array("list"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(g.get_string("s"), "a b");
  EXPECT_TRUE(ConfigView(doc, "new.t").get_bool("k"));
  EXPECT_EQ(g.location("scale").file, "--set g.scale=5");
}

TEST(ConfigLoader, BadSetIsAnError) {
  TempDir d;
  write_text(d / "c.toml", "[g]\nscale = 1.0\n");
  expect_error_contains([&] { load(d, "c.toml", {"g.scale"}); }, {"--set 'g.scale'", "expected KEY.PATH=VALUE"});
  expect_error_contains([&] { load(d, "c.toml", {"g.scale=[1,"}); }, {"--set g.scale", "not a valid TOML value"});
  expect_error_contains([&] { load(d, "c.toml", {"g.scale.x=1"}); }, {"--set g.scale.x", "'g.scale' is a value"});
  expect_error_contains([&] { load(d, "c.toml", {"g..x=1"}); }, {"empty key"});
  expect_error_contains([&] { load(d, "c.toml", {"imports=[\"x.toml\"]"}); }, {"cannot be overridden"});
}

TEST(ConfigLoader, MissingImportNamesFileAndLine) {
  TempDir d;
  write_text(d / "c.toml", "schema_version = 1\nimports = [\"gone.toml\"]\n");
  expect_error_contains([&] { load(d, "c.toml"); }, {"c.toml:2:11", "gone.toml' does not exist"});
}

TEST(ConfigLoader, ImportCycleAndDepthAreErrors) {
  TempDir d;
  write_text(d / "a.toml", "imports = [\"b.toml\"]\n");
  write_text(d / "b.toml", "imports = [\"a.toml\"]\n");
  expect_error_contains([&] { load(d, "a.toml"); }, {"import cycle"});
}

TEST(ConfigLoader, InvalidTomlNamesLineAndColumn) {
  TempDir d;
  write_text(d / "c.toml", "[g]\nscale = = 1\n");
  expect_error_contains([&] { load(d, "c.toml"); }, {"c.toml:2:", "invalid TOML"});
}

TEST(ConfigLoader, SchemaVersionChecked) {
  TempDir d;
  write_text(d / "c.toml", "schema_version = 2\n");
  expect_error_contains([&] { load(d, "c.toml"); }, {"c.toml:1:", "schema_version must be 1, but got 2"});
}

TEST(ConfigLoader, VariablesExpand) {
  TempDir d;
  ::setenv("DAUG_TEST_VAR", "xyz", 1);
  write_text(d / "sub/c.toml", "[g]\nroot = \"${config_dir}/data\"\nv = \"${env:DAUG_TEST_VAR}\"\n");
  write_text(d / "e.toml", "imports = [\"sub/c.toml\"]\n");
  auto doc = load(d, "e.toml");
  ConfigView g(doc, "g");
  EXPECT_EQ(g.get_string("root"), (d / "sub").string() + "/data");
  EXPECT_EQ(g.get_string("v"), "xyz");
  write_text(d / "bad.toml", "[g]\nv = \"${env:DAUG_SURELY_UNSET_VAR}\"\n");
  expect_error_contains([&] { load(d, "bad.toml"); }, {"bad.toml:2:5", "DAUG_SURELY_UNSET_VAR", "not set"});
  write_text(d / "bad2.toml", "[g]\nv = \"${nope}\"\n");
  expect_error_contains([&] { load(d, "bad2.toml"); }, {"unknown variable '${nope}'"});
}

TEST(ConfigLoader, ResolvedTomlRoundTrips) {
  TempDir d;
  write_text(d / "c.toml", "[g]\nplugin = \"x\"\nscale = 2.5\nlist = [\"a\", \"b\"]\n[g.sub]\nk = 1\n");
  auto doc = load(d, "c.toml");
  std::string text = daug::core::resolved_toml(*doc, false);
  auto again = parse_config(text, "resolved");
  EXPECT_EQ(ConfigView(again, "g").to_toml(), ConfigView(doc, "g").to_toml());
  std::string annotated = daug::core::resolved_toml(*doc, true);
  EXPECT_NE(annotated.find("# " + (d / "c.toml").string() + ":3:9"), std::string::npos) << annotated;
}
