// Hashes (known test vectors), source helpers (label cells, splits, limits, missing files) and dataset tensors.
#include <daug/data/dataset.h>
#include <daug/data/hash.h>
#include <daug/data/image.h>
#include <daug/sources/source_util.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace daug::data;
using daug::testing::expect_error_contains;

TEST(Hash, Sha256KnownVectors) {
  // FIPS 180-4 examples.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')).size(), 64u);
  EXPECT_EQ(sha256_bucket100("abc"), static_cast<int>(0xba7816bfu % 100));
}

TEST(Hash, Fnv1a) {
  EXPECT_EQ(fnv1a64(""), 14695981039346656037ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
}

TEST(SourceUtil, LabelCellsAndPolicies) {
  CsvTable t = CsvTable::parse("a,b,c,d,e\n1.0,0.0,-1.0,,maybe\n", "l.csv");
  EXPECT_EQ(parse_label_cell(t, 0, 0, LabelPolicy::zeros, LabelPolicy::zeros), 1.0f);
  EXPECT_EQ(parse_label_cell(t, 0, 1, LabelPolicy::ones, LabelPolicy::ones), 0.0f);
  EXPECT_EQ(parse_label_cell(t, 0, 2, LabelPolicy::zeros, LabelPolicy::ones), 0.0f);
  EXPECT_EQ(parse_label_cell(t, 0, 2, LabelPolicy::ones, LabelPolicy::zeros), 1.0f);
  EXPECT_TRUE(std::isnan(parse_label_cell(t, 0, 2, LabelPolicy::ignore, LabelPolicy::zeros)));
  EXPECT_EQ(parse_label_cell(t, 0, 3, LabelPolicy::ignore, LabelPolicy::zeros), 0.0f);
  EXPECT_TRUE(std::isnan(parse_label_cell(t, 0, 3, LabelPolicy::zeros, LabelPolicy::ignore)));
  expect_error_contains([&] { parse_label_cell(t, 0, 4, LabelPolicy::zeros, LabelPolicy::zeros); },
                        {"l.csv:2", "column 'e'", "'maybe'"});
  expect_error_contains([] { parse_label_policy("U-Ones", "[data].uncertain"); }, {"[data].uncertain", "U-Ones"});
}

TEST(SourceUtil, Splits) {
  EXPECT_EQ(normalize_split_value("validate"), "val");
  EXPECT_EQ(normalize_split_value("valid"), "val");
  EXPECT_EQ(normalize_split_value("train"), "train");
  EXPECT_EQ(normalize_split_value("TEST"), "");
  CsvTable t = CsvTable::parse("split\ntest\ndev\n", "s.csv");
  EXPECT_EQ(normalize_split(t, 0, 0), "test");
  expect_error_contains([&] { normalize_split(t, 1, 0); }, {"s.csv:3", "'dev'"});
}

TEST(SourceUtil, CommonOptionsDefaultIsReleasedGrouping) {
  SourceCommonOptions o;
  auto g = o.grouping("[data]");
  auto r = daug::SuperClassGrouping::released();
  EXPECT_EQ(g.names, r.names);
  EXPECT_EQ(g.members, r.members);
  ASSERT_EQ(g.size(), 7);
  EXPECT_EQ(o.superclass_members[4], (std::vector<std::string>{"Atelectasis", "Pneumothorax"}));
  o.superclass_members[1][0] = "Enlarged Heart";
  expect_error_contains([&] { o.grouping("[data]"); }, {"[data]", "Enlarged Heart"});
}

daug::Sample sample(const std::string& id, const std::filesystem::path& img, const std::string& split) {
  daug::Sample s;
  s.id = id;
  s.image = img;
  s.split = split;
  s.labels.assign(14, 0.0f);
  return s;
}

TEST(SourceUtil, FinalizeLimitsMissingDuplicates) {
  daug::testing::TempDir d;
  at::Tensor img = at::full({1, 4, 6}, 0.5f);
  for (int i = 0; i < 4; ++i) save_png(d / ("i" + std::to_string(i) + ".png"), img);
  auto make = [&] {
    return std::vector<daug::Sample>{sample("i0", d / "i0.png", "train"), sample("i1", d / "i1.png", "train"),
                                     sample("gone", d / "gone.png", "val"), sample("i2", d / "i2.png", "test"),
                                     sample("i3", d / "i3.png", "train")};
  };
  SourceCommonOptions o;
  o.root = d.path().string();
  auto s = make();
  finalize_samples(s, o, "test(source)");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(split_summary(s), "train 3, test 1");
  o.strict = true;
  s = make();
  expect_error_contains([&] { finalize_samples(s, o, "test(source)"); },
                        {"test(source)", "1 image files are missing", "gone.png", "strict"});
  o.strict = false;
  o.max_per_split = 1;
  s = make();
  finalize_samples(s, o, "src");
  EXPECT_EQ(s.size(), 2u);  // i0 (train), i2 (test); the val item is missing
  o.max_per_split = 0;
  o.limit = 2;
  s = make();
  finalize_samples(s, o, "src");
  EXPECT_EQ(s.size(), 2u);
  o.limit = 0;
  s = make();
  s[1].id = "i0";
  expect_error_contains([&] { finalize_samples(s, o, "src"); }, {"ids must be unique", "i0"});
  std::vector<daug::Sample> none{sample("x", d / "x.png", "train")};
  expect_error_contains([&] { finalize_samples(none, o, "src"); }, {"src", "no images left", "1 missing"});
}

TEST(SourceUtil, RootDirIsAbsolute) {
  daug::testing::TempDir d;
  SourceCommonOptions o;
  o.root = d.path().string() + "/";
  EXPECT_EQ(o.root_dir("x"), d.path());
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(d.path().parent_path());
  o.root = d.path().filename().string();
  EXPECT_EQ(o.root_dir("x"), d.path());
  std::filesystem::current_path(cwd);
  o.root = (d / "missing").string();
  expect_error_contains([&] { o.root_dir("src"); }, {"src", "root", "missing", "does not exist"});
}

TEST(SourceUtil, Utf8ReplacementMatchesPython) {
  // Expected values from CPython 3: b.decode("utf-8", "replace").encode("utf-8") and the count of U+FFFD; Python
  // implements Unicode's "maximal subpart" substitution (one U+FFFD per maximal ill-formed subsequence).
  const std::string R = "\xEF\xBF\xBD";
  struct Case {
    std::string in, out;
    size_t n, first;
  };
  const std::vector<Case> cases = {
      {"a\xff"
       "b",
       "a" + R + "b", 1, 1},
      {"\xe2\x82x", R + "x", 1, 0},               // truncated 3-byte sequence: one U+FFFD
      {"\xed\xa0\x80", R + R + R, 3, 0},          // a UTF-16 surrogate
      {"\xc0\xaf", R + R, 2, 0},                  // overlong '/'
      {"\xf4\x90\x80\x80", R + R + R + R, 4, 0},  // above U+10FFFF
      {"\xf0\x9f\x98", R, 1, 0},                  // an emoji cut short
      {"\xe0\x80\x80", R + R + R, 3, 0},          // overlong 3-byte NUL
      {"\xf1\x80\x80\xe1\x80\xc2", R + R + R, 3, 0},
      {"\x80\x80", R + R, 2, 0},
      {"ok\xc3", "ok" + R, 1, 2},
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0, std::string::npos},
  };
  for (const auto& c : cases) {
    size_t n = 99;
    EXPECT_EQ(replace_invalid_utf8(c.in, &n), c.out) << c.in;
    EXPECT_EQ(n, c.n) << c.in;
    EXPECT_EQ(first_invalid_utf8(c.in), c.first) << c.in;
  }
  TextCheck lenient("src", false);
  EXPECT_EQ(lenient("fine \xc3\xa9", "a.csv:2: column 'report'"), "fine \xc3\xa9");
  EXPECT_EQ(lenient("bad \xff\xfe", "a.csv:3: column 'report'"), "bad " + R + R);
  EXPECT_EQ(lenient.fields(), 1u);
  EXPECT_EQ(lenient.sequences(), 2u);
  TextCheck strict("src", true);
  expect_error_contains([&] { strict("Heart size normal.\xff", "m.csv:4: column 'report'"); },
                        {"m.csv:4: column 'report': invalid UTF-8 at byte offset 18 (bytes ff)", "strict = true"});
}

TEST(Dataset, TensorsFromSamples) {
  daug::testing::TempDir d;
  save_png(d / "a.png", at::full({1, 8, 8}, 1.0f));
  save_png(d / "b.png", at::zeros({1, 4, 4}));
  std::vector<daug::Sample> all{sample("a", d / "a.png", "train"), sample("b", d / "b.png", "train")};
  all[0].labels[1] = 1.0f;                                       // Cardiomegaly
  all[1].labels[8] = std::numeric_limits<float>::quiet_NaN();   // Pneumothorax ignored
  auto ptrs = pointers(all);
  at::Tensor x = load_images(ptrs, 4, 4);
  ASSERT_EQ(x.sizes(), (at::IntArrayRef{2, 1, 4, 4}));
  EXPECT_FLOAT_EQ(x[0].min().item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(x[1].max().item<float>(), 0.0f);
  at::Tensor y = class_labels(ptrs);
  EXPECT_EQ(y.sizes(), (at::IntArrayRef{2, 14}));
  EXPECT_TRUE(std::isnan(y[1][8].item<float>()));
  at::Tensor sc = superclass_labels(ptrs, daug::SuperClassGrouping::released());
  EXPECT_EQ(sc[0][1].item<float>(), 1.0f);
  EXPECT_EQ(sc.sum().item<float>(), 1.0f);
  EXPECT_EQ(load_images(ptrs, 2, 3, Filter::bilinear, true).sizes(), (at::IntArrayRef{2, 3, 2, 3}));
  daug::Sample bad = sample("bad", d / "nope.png", "train");
  expect_error_contains([&] { load_sample_image(bad, 4, 4); }, {"sample 'bad'", "nope.png"});
}

}  // namespace
