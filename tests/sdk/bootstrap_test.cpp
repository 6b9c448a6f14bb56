// daug/bootstrap.h and daug/paired_items.h: the bootstrap against an independent numpy reference
// (fixtures/make_bootstrap_reference.py), invariants with exact answers, and the file format's errors.
#include <daug/bootstrap.h>
#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/paired_items.h>

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

using daug::testing::expect_error_contains;

namespace {

const std::filesystem::path kFixtures = std::filesystem::path(DAUG_SOURCE_DIR) / "tests" / "sdk" / "fixtures";

nlohmann::json reference() {
  std::ifstream in(kFixtures / "bootstrap_reference.json");
  return nlohmann::json::parse(in);
}

double num(const nlohmann::json& v) { return v.is_null() ? NAN : v.get<double>(); }

daug::PairedMetric metric_of(const std::string& kind, const nlohmann::json& items) {
  daug::PairedMetric m{"m", kind, {}};
  for (const auto& it : items) {
    daug::PairedItem p{it[0].get<std::string>(), {}, {}};
    if (kind == "mean") {
      p.values.push_back(it[1].get<double>());
    } else {
      for (const auto& v : it[1]) p.values.push_back(num(v));
      for (const auto& v : it[2]) p.labels.push_back(num(v));
    }
    m.items.push_back(std::move(p));
  }
  return m;
}

daug::PairedMetric mean_metric(const std::vector<double>& values, const std::string& prefix = "i") {
  daug::PairedMetric m{"hit_rate", daug::paired_kinds::kMean, {}};
  for (size_t i = 0; i < values.size(); ++i) m.items.push_back({prefix + std::to_string(i), {values[i]}, {}});
  return m;
}

}  // namespace

TEST(Bootstrap, MatchesTheIndependentNumpyReference) {
  const auto ref = reference();
  const int64_t draws = ref["draws"].get<int64_t>();
  ASSERT_EQ(ref["cases"].size(), 6u);
  for (const auto& c : ref["cases"]) {
    const auto kind = c["kind"].get<std::string>();
    const auto m = metric_of(kind, c["items"]);
    const auto ci = daug::bootstrap_interval(m, draws, c["seed"].get<uint64_t>());
    const std::string what = kind + " seed " + std::to_string(c["seed"].get<int>());
    EXPECT_NEAR(ci.estimate, c["estimate"].get<double>(), 1e-12) << what;
    EXPECT_NEAR(ci.lo, c["lo"].get<double>(), 1e-12) << what;
    EXPECT_NEAR(ci.hi, c["hi"].get<double>(), 1e-12) << what;
    EXPECT_EQ(ci.draws, draws);
    EXPECT_EQ(ci.defined_draws, c["defined_draws"].get<int64_t>()) << what;
  }
  const auto& p = ref["paired"];
  const auto d = daug::paired_difference(metric_of("macro_auc", p["base"]), metric_of("macro_auc", p["other"]), draws,
                                         p["seed"].get<uint64_t>());
  EXPECT_EQ(d.paired, p["paired"].get<size_t>());
  EXPECT_EQ(d.base_items, 40u);
  EXPECT_EQ(d.other_items, 38u);
  EXPECT_NEAR(d.delta.estimate, p["estimate"].get<double>(), 1e-12);
  EXPECT_NEAR(d.delta.lo, p["lo"].get<double>(), 1e-12);
  EXPECT_NEAR(d.delta.hi, p["hi"].get<double>(), 1e-12);
  EXPECT_EQ(d.delta.defined_draws, p["defined_draws"].get<int64_t>());
  // The resampling itself, pick by pick.
  const auto& r = ref["counts"];
  std::vector<uint32_t> expected(r["n"].get<size_t>(), 0);
  for (const auto& i : r["indices"]) ++expected[i.get<size_t>()];
  EXPECT_EQ(daug::bootstrap_counts(expected.size(), r["seed"].get<uint64_t>(), r["draw"].get<uint64_t>()), expected);
}

TEST(Bootstrap, IdenticalVariantsDifferByExactlyZero) {
  const auto ref = reference();
  for (const auto& c : ref["cases"]) {
    const auto m = metric_of(c["kind"].get<std::string>(), c["items"]);
    const auto d = daug::paired_difference(m, m, 300, 1);
    EXPECT_EQ(d.delta.estimate, 0.0) << m.kind;
    EXPECT_EQ(d.delta.lo, 0.0) << m.kind;
    EXPECT_EQ(d.delta.hi, 0.0) << m.kind;
    EXPECT_EQ(d.paired, m.items.size());
  }
}

TEST(Bootstrap, AConstantShiftGivesExactlyThatDifference) {
  // 64 items with values in eighths and d = 0.25: every resampled mean is exact in binary floating point.
  std::vector<double> a, b;
  for (int i = 0; i < 64; ++i) {
    a.push_back((i * 5 % 8) / 8.0);
    b.push_back(a.back() + 0.25);
  }
  auto base = mean_metric(a), other = mean_metric(b);
  std::reverse(other.items.begin(), other.items.end());  // pairing is by id, not by position
  const auto d = daug::paired_difference(base, other, 500, 0);
  EXPECT_EQ(d.delta.estimate, 0.25);
  EXPECT_EQ(d.delta.lo, 0.25);
  EXPECT_EQ(d.delta.hi, 0.25);
  // Unpaired, the CI of the shifted metric is the base's shifted (the same draws).
  const auto ca = daug::bootstrap_interval(base, 500, 0), cb = daug::bootstrap_interval(mean_metric(b), 500, 0);
  EXPECT_EQ(cb.lo, ca.lo + 0.25);
  EXPECT_EQ(cb.hi, ca.hi + 0.25);
  EXPECT_LT(ca.lo, ca.estimate);
  EXPECT_GT(ca.hi, ca.estimate);
}

TEST(Bootstrap, ZeroOneMeanMatchesTheNormalApproximation) {
  // p = 0.3 of n = 2000: the 95% CI half-width is about 1.96·sqrt(p(1−p)/n) = 0.0201.
  std::vector<double> v;
  for (int i = 0; i < 2000; ++i) v.push_back(i % 10 < 3 ? 1.0 : 0.0);
  const auto ci = daug::bootstrap_interval(mean_metric(v), 1000, 0);
  const double half = 1.959964 * std::sqrt(0.3 * 0.7 / 2000);
  EXPECT_NEAR(ci.estimate, 0.3, 1e-12);
  EXPECT_NEAR(ci.hi - ci.lo, 2 * half, 0.1 * 2 * half);
  EXPECT_NEAR((ci.hi + ci.lo) / 2, 0.3, 0.2 * half);
}

TEST(Bootstrap, SameSeedSameIntervalAnotherSeedAnother) {
  const auto ref = reference();
  const auto m = metric_of("macro_auc", ref["cases"][2]["items"]);
  const auto a = daug::bootstrap_interval(m, 100, 5), b = daug::bootstrap_interval(m, 100, 5);
  const auto c = daug::bootstrap_interval(m, 100, 6);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_TRUE(a.lo != c.lo || a.hi != c.hi);
  EXPECT_EQ(a.estimate, c.estimate);
  const auto none = daug::bootstrap_interval(m, 0, 5);  // draws = 0: the estimate only
  EXPECT_EQ(none.estimate, a.estimate);
  EXPECT_TRUE(std::isnan(none.lo) && std::isnan(none.hi));
}

TEST(Bootstrap, PairsOnlyTheCommonIds) {
  auto base = mean_metric({1, 0, 1, 1});              // i0..i3
  auto other = mean_metric({0, 0, 0, 0, 0, 0}, "i");  // i0..i5
  other.items.erase(other.items.begin());             // i1..i5
  const auto d = daug::paired_difference(base, other, 50, 0);
  EXPECT_EQ(d.paired, 3u);
  EXPECT_EQ(d.base_items, 4u);
  EXPECT_EQ(d.other_items, 5u);
  EXPECT_NEAR(d.base_value, 2.0 / 3.0, 1e-15);  // i1..i3 only
  EXPECT_EQ(d.other_value, 0.0);
  auto bad = base;
  bad.kind = daug::paired_kinds::kMacroAuc;
  expect_error_contains([&] { daug::paired_difference(base, bad, 10, 0); }, {"same kind"});
}

TEST(PairedItems, WriterOutputReadsBackExactly) {
  daug::testing::TempDir tmp;
  const auto ref = reference();
  daug::PairedItems p;
  for (const auto& c : {ref["cases"][0], ref["cases"][2], ref["cases"][4]}) {
    auto m = metric_of(c["kind"].get<std::string>(), c["items"]);
    m.name = "x." + m.kind;
    p.metrics.push_back(m);
  }
  p.metrics[0].items[0].id = "quote\"back\\slash\ttab";
  daug::write_file_atomic(tmp / "p.json", p.to_json());
  const auto back = daug::read_paired_items(tmp / "p.json");
  ASSERT_EQ(back.metrics.size(), 3u);
  for (size_t m = 0; m < 3; ++m) {
    EXPECT_EQ(back.metrics[m].name, p.metrics[m].name);
    ASSERT_EQ(back.metrics[m].items.size(), p.metrics[m].items.size());
    for (size_t i = 0; i < p.metrics[m].items.size(); ++i) {
      const auto &a = p.metrics[m].items[i], &b = back.metrics[m].items[i];
      EXPECT_EQ(a.id, b.id);
      ASSERT_EQ(a.values.size(), b.values.size());
      for (size_t c = 0; c < a.values.size(); ++c)
        EXPECT_TRUE(a.values[c] == b.values[c] || (std::isnan(a.values[c]) && std::isnan(b.values[c])));
      ASSERT_EQ(a.labels.size(), b.labels.size());
      for (size_t c = 0; c < a.labels.size(); ++c)
        EXPECT_TRUE(a.labels[c] == b.labels[c] || (std::isnan(a.labels[c]) && std::isnan(b.labels[c])));
    }
    EXPECT_EQ(daug::paired_metric_value(back.metrics[m]), daug::paired_metric_value(p.metrics[m]));
  }
}

TEST(PairedItems, MalformedFilesAreDataErrorsNamingTheFileAndWhatWasExpected) {
  daug::testing::TempDir tmp;
  const auto file = tmp / "paired_items.json";
  auto expect = [&](const std::string& text, std::vector<std::string> parts) {
    daug::write_file_atomic(file, text);
    parts.insert(parts.begin(), file.string());
    try {
      daug::read_paired_items(file);
      ADD_FAILURE() << "no error for " << text;
    } catch (const daug::DataError& e) {
      for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  const std::string head = "{\"format\": \"daug.paired_items/1\", \"metrics\": [";
  expect("{not json", {"not valid JSON"});
  expect("{\"format\": \"other/2\", \"metrics\": []}", {"daug.paired_items/1", "other/2"});
  expect("{\"format\": \"daug.paired_items/1\", \"metrics\": {}}", {"\"metrics\": [...]"});
  expect(head + "{\"name\": \"a\", \"kind\": \"median\", \"items\": []}]}", {"kind 'median'", "mean, macro_auc"});
  expect(head + "{\"name\": \"a\", \"kind\": \"mean\", \"items\": [[\"x\", \"0.5\"]]}]}",
         {"metrics[0] ('a', mean), item 0", "expected [\"<id>\", <number>]"});
  expect(head + "{\"name\": \"a\", \"kind\": \"mean\", \"items\": [[\"x\", 1], [\"x\", 0]]}]}", {"appears twice"});
  expect(head +
             "{\"name\": \"auc.Avg\", \"kind\": \"macro_auc\", \"items\": [[\"x\", [0.1, 0.2], [1, 0]], "
             "[\"y\", [0.3], [1]]]}]}",
         {"item 1 ('y')", "like item 0"});
  expect(head + "{\"name\": \"auc.Avg\", \"kind\": \"macro_auc\", \"items\": [[\"x\", [0.1], [2]]]}]}",
         {"a label must be 0, 1 or null, but found 2"});
  expect(head + "{\"name\": \"m\", \"kind\": \"macro_mean\", \"items\": [[\"x\", [null], [1]]]}]}",
         {"membership is 1"});
  expect_error_contains([&] { daug::read_paired_items(tmp / "absent.json"); }, {"absent.json", "cannot open"});
}
