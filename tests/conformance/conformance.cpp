// Shared machinery of the conformance suite: plugin discovery, building from configs, and the contract checks.
#include "conformance.h"

#include "search_reference.h"

#include <daug/error.h>
#include <daug/labels.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <regex>
#include <set>
#include <sstream>
#include <type_traits>

namespace daug::conformance {

void PrintTo(const PluginCase& c, std::ostream* os) { *os << c.interface << " '" << c.name << "' (" << c.library.string() << ")"; }

const std::vector<std::string>& known_interfaces() {
  static const std::vector<std::string> k = {
      Guidance::kInterface,  Generator::kInterface,       Classifier::kInterface, Backbone::kInterface,
      Criterion::kInterface, HeatmapComposer::kInterface, Source::kInterface,     Stage::kInterface,
      Command::kInterface,   VectorSearch::kInterface};
  return k;
}

const std::vector<std::string>& trainable_interfaces() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> out;
    auto add = [&](auto* tag, const char* name) {
      using T = std::remove_pointer_t<decltype(tag)>;
      if (std::is_base_of_v<Trainable, T>) out.emplace_back(name);
    };
    add(static_cast<Guidance*>(nullptr), Guidance::kInterface);
    add(static_cast<Generator*>(nullptr), Generator::kInterface);
    add(static_cast<Classifier*>(nullptr), Classifier::kInterface);
    add(static_cast<Backbone*>(nullptr), Backbone::kInterface);
    add(static_cast<Criterion*>(nullptr), Criterion::kInterface);
    add(static_cast<HeatmapComposer*>(nullptr), HeatmapComposer::kInterface);
    add(static_cast<Source*>(nullptr), Source::kInterface);
    add(static_cast<Stage*>(nullptr), Stage::kInterface);
    add(static_cast<Command*>(nullptr), Command::kInterface);
    add(static_cast<VectorSearch*>(nullptr), VectorSearch::kInterface);
    return out;
  }();
  return k;
}

core::PluginLoader& loader() {
  // Never destroyed: plugin libraries stay loaded for the life of the process (plugin_loader.h).
  static core::PluginLoader* l = [] {
    auto* p = new core::PluginLoader({DAUG_TEST_PLUGIN_DIR});
    p->load_all();
    return p;
  }();
  return *l;
}

std::vector<PluginCase> plugins_of(const std::string& interface) {
  std::vector<PluginCase> out;
  for (const auto& p : loader().list())
    if (interface.empty() || p.interface == interface) out.push_back({p.interface, p.name, p.library});
  return out;
}

std::vector<PluginCase> plugins_of_any(const std::vector<std::string>& interfaces) {
  std::vector<PluginCase> out;
  for (const auto& i : interfaces) {
    auto some = plugins_of(i);
    out.insert(out.end(), some.begin(), some.end());
  }
  return out;
}

namespace {
std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}
}  // namespace

std::string plugin_param_name(const ::testing::TestParamInfo<PluginCase>& info) { return sanitize(info.param.name); }
std::string qualified_param_name(const ::testing::TestParamInfo<PluginCase>& info) {
  return sanitize(info.param.interface + "_" + info.param.name);
}

std::string snake(const std::string& interface) {
  std::string out;
  for (size_t i = 0; i < interface.size(); ++i) {
    char c = interface[i];
    if (std::isupper(static_cast<unsigned char>(c))) {
      if (i > 0) out += '_';
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out;
}

std::filesystem::path configs_dir() { return DAUG_CONFORMANCE_CONFIGS; }

std::filesystem::path config_for(const PluginCase& c) { return configs_dir() / snake(c.interface) / (c.name + ".toml"); }

std::string default_table(const std::string& interface) {
  if (interface == HeatmapComposer::kInterface) return "composer";
  if (interface == Source::kInterface) return "data";
  if (interface == VectorSearch::kInterface) return "search";
  return snake(interface);
}

Built::Built(const PluginCase& c, const std::vector<std::string>& overrides) : case_(c) {
  const auto file = config_for(c);
  if (!std::filesystem::exists(file))
    throw Error("no conformance config " + file.string() + " for " + c.interface + " plugin '" + c.name +
                "' (see tests/conformance/conformance.h)");
  doc_ = core::load_config(file, overrides);
  // The table under test: [conformance].table, else the interface's usual table, else the one table naming the
  // plugin (stage configs are plain run configs and carry no [conformance] table).
  auto names_plugin = [&](const std::string& table) {
    ConfigView t(doc_, table);
    return t.exists() && t.has("plugin") && t.type_of("plugin") == "string" && t.get_string("plugin") == c.name;
  };
  ConfigView h(doc_, "conformance");
  if (h.exists() && h.has("table")) {
    table_ = h.get_string("table");
  } else if (names_plugin(default_table(c.interface))) {
    table_ = default_table(c.interface);
  } else {
    std::vector<std::string> found;
    for (const auto& [key, node] : doc_->root)
      if (node.is_table() && names_plugin(std::string(key.str()))) found.emplace_back(key.str());
    if (found.size() == 1) table_ = found.front();
  }
  if (table_.empty() || !names_plugin(table_))
    throw Error(file.string() + ": no table (or more than one) configures plugin '" + c.name +
                "'; set [conformance] table = \"...\"");
  exp_ = std::make_unique<core::Experiment>(loader(), doc_, dir_.path());
}

Built::~Built() { exp_.reset(); }

ConfigView Built::hints() const { return ConfigView(doc_, "conformance"); }

std::shared_ptr<Component> Built::subject_any() {
  const std::string& i = case_.interface;
  if (i == Guidance::kInterface) return subject<Guidance>();
  if (i == Generator::kInterface) return subject<Generator>();
  if (i == Classifier::kInterface) return subject<Classifier>();
  if (i == Backbone::kInterface) return subject<Backbone>();
  if (i == Criterion::kInterface) return subject<Criterion>();
  if (i == HeatmapComposer::kInterface) return subject<HeatmapComposer>();
  if (i == Source::kInterface) return subject<Source>();
  if (i == Stage::kInterface) return subject<Stage>();
  if (i == Command::kInterface) return subject<Command>();
  if (i == VectorSearch::kInterface) return subject<VectorSearch>();
  throw Error("the conformance suite has no contracts for interface '" + i + "'; add them in tests/conformance");
}

// ---- Trainable ----------------------------------------------------------------------------------------------

NamedTensors clone_state(const NamedTensors& s) {
  NamedTensors out;
  for (const auto& [k, t] : s) out.emplace_back(k, t.detach().clone());
  return out;
}

NamedTensors perturbed_state(const NamedTensors& s, uint64_t seed) {
  at::manual_seed(seed);
  NamedTensors out;
  for (const auto& [k, t] : s) {
    at::Tensor v;
    if (t.is_floating_point())
      v = at::randn(t.sizes(), t.options()) * 0.02;
    else if (t.scalar_type() == at::kBool)
      v = t.detach().logical_not();
    else
      v = t.detach() + 1;
    out.emplace_back(k, v);
  }
  return out;
}

void expect_same_state(const NamedTensors& expected, const NamedTensors& actual, const std::string& what) {
  ASSERT_EQ(expected.size(), actual.size()) << what << ": number of tensors differs";
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [ek, et] = expected[i];
    const auto& [ak, at_] = actual[i];
    EXPECT_EQ(ek, ak) << what << ": key " << i << " differs (order must be stable)";
    if (et.sizes() != at_.sizes() || et.scalar_type() != at_.scalar_type()) {
      ADD_FAILURE() << what << ": '" << ek << "' has shape/dtype " << at_.sizes() << "/" << at_.scalar_type()
                    << ", expected " << et.sizes() << "/" << et.scalar_type();
      continue;
    }
    if (!at::equal(et.cpu(), at_.cpu())) ADD_FAILURE() << what << ": tensor '" << ek << "' differs";
  }
}

void check_state_round_trip(Trainable& t) {
  const NamedTensors before = clone_state(t.state());
  ASSERT_FALSE(before.empty()) << "state() is empty";
  std::set<std::string> keys;
  for (const auto& [k, v] : before) EXPECT_TRUE(keys.insert(k).second) << "duplicate state key '" << k << "'";
  expect_same_state(before, t.state(), "state() called twice");

  // Identity: load what state() gave.
  t.load_state(clone_state(t.state()));
  expect_same_state(before, t.state(), "state() → load_state(state) → state()");

  // A different state is reproduced exactly and is copied, not aliased.
  NamedTensors donor = perturbed_state(before, 1234);
  const NamedTensors donor_copy = clone_state(donor);
  t.load_state(donor);
  expect_same_state(donor_copy, t.state(), "load_state(other) → state()");
  for (auto& [k, v] : donor) v.fill_(7);  // mutate the caller's tensors after loading
  expect_same_state(donor_copy, t.state(), "state after the caller mutated the loaded tensors (aliasing)");

  t.load_state(before);  // leave the component as it was
  expect_same_state(before, t.state(), "restoring the original state");
}

void check_load_state_rejects(Trainable& t, const NamedTensors& bad, const std::string& key, const std::string& what) {
  const NamedTensors before = clone_state(t.state());
  bool threw_data_error = false;
  try {
    t.load_state(bad);
  } catch (const DataError& e) {
    threw_data_error = true;
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos)
        << what << ": the DataError must name the key '" << key << "'; message: " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": threw something other than daug::DataError: " << e.what();
  }
  EXPECT_TRUE(threw_data_error) << what << ": load_state must throw daug::DataError";
  expect_same_state(before, t.state(), what + ": the component changed although load_state failed");
}

// ---- Source -------------------------------------------------------------------------------------------------

void check_source(const Source& s) {
  const auto& all = s.samples();
  ASSERT_FALSE(all.empty()) << "no samples";
  EXPECT_EQ(&all, &s.samples()) << "samples() must be fixed after construction";
  EXPECT_FALSE(s.superclasses().names.empty()) << "no super-classes";

  std::set<std::string> ids;
  for (const auto& x : all) {
    SCOPED_TRACE("sample '" + x.id + "'");
    EXPECT_FALSE(x.id.empty()) << "empty id";
    EXPECT_TRUE(ids.insert(x.id).second) << "duplicate id '" << x.id << "'";
    EXPECT_TRUE(x.split == "train" || x.split == "val" || x.split == "test") << "split '" << x.split << "'";
    EXPECT_EQ(x.labels.size(), kChexpertClasses.size()) << "labels must have 14 values";
    for (float v : x.labels) EXPECT_TRUE(v == 0.f || v == 1.f || std::isnan(v)) << "label value " << v;
    EXPECT_TRUE(x.image.is_absolute()) << "image path must be absolute: " << x.image;
    EXPECT_TRUE(std::filesystem::is_regular_file(x.image)) << "image does not exist: " << x.image;
  }

  std::map<std::string, std::set<const Sample*>> by;
  for (const char* sp : {"train", "val", "test"}) {
    std::vector<const Sample*> got;
    try {
      got = s.split(sp);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "split(\"" << sp << "\") threw: " << e.what() << " (the fixture has items in every split)";
    }
    for (const Sample* p : got) {
      EXPECT_EQ(p->split, sp) << "split(\"" << sp << "\") returned '" << p->id << "' of split " << p->split;
      EXPECT_TRUE(by[sp].insert(p).second) << "split(\"" << sp << "\") lists '" << p->id << "' twice";
    }
  }
  std::set<const Sample*> uni;
  for (const auto& [sp, set] : by)
    for (const Sample* p : set) EXPECT_TRUE(uni.insert(p).second) << "'" << p->id << "' is in two splits";
  std::set<const Sample*> every;
  for (const auto& x : all) every.insert(&x);
  EXPECT_EQ(uni, every) << "train ∪ val ∪ test must equal samples(): " << uni.size() << " vs " << every.size();
  std::set<const Sample*> tv = by["train"];
  tv.insert(by["val"].begin(), by["val"].end());
  try {
    auto joined = s.split("train+val");
    std::set<const Sample*> got(joined.begin(), joined.end());
    EXPECT_EQ(got.size(), joined.size()) << "split(\"train+val\") lists an item twice";
    EXPECT_EQ(got, tv) << "split(\"train+val\") must equal split(\"train\") ∪ split(\"val\")";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "split(\"train+val\") threw: " << e.what();
  }
}

// ---- Generator ----------------------------------------------------------------------------------------------

void check_zero_guidance_is_reconstruction(Generator& g, Guidance& zero, const TranslateRequest& base) {
  for (EncodeMode mode : {EncodeMode::ddim_inversion, EncodeMode::q_sample}) {
    const char* name = mode == EncodeMode::ddim_inversion ? "ddim_inversion" : "q_sample";
    TranslateRequest plain = base;
    plain.encode = mode;
    plain.guidance = nullptr;
    TranslateRequest guided = plain;
    guided.guidance = &zero;
    at::manual_seed(99);
    at::Tensor a = g.translate(plain);
    at::manual_seed(99);
    at::Tensor a2 = g.translate(plain);
    at::manual_seed(99);
    at::Tensor b = g.translate(guided);
    ASSERT_EQ(a.sizes(), base.x0.sizes()) << name;
    ASSERT_EQ(b.sizes(), base.x0.sizes()) << name;
    EXPECT_TRUE(at::equal(a, a2)) << name << ": translate is not reproducible under the same seed";
    const double diff = daug::testing::max_abs_diff(a, b);
    EXPECT_LE(diff, 1e-5) << name << ": translate with a zero-scale guidance must equal the plain reconstruction "
                          << "(no guidance), but max |Δ| = " << diff;
  }
}

// ---- VectorSearch -------------------------------------------------------------------------------------------

void check_vector_search(VectorSearch& s, bool exact) {
  EXPECT_EQ(s.size(), 0) << "size() before add()";
  EXPECT_EQ(s.dim(), 0) << "dim() before add()";
  const int64_t n = 600, d = 16;
  daug::testing::RowMatrix db = daug::testing::clustered_unit_rows(n, d, 12, 0.2f, 21);
  // Rows 100 and 300 duplicate row 5: equal scores, to be ordered 5, 100, 300.
  for (int64_t dup : {100, 300}) std::copy_n(db.row(5), d, db.values.data() + dup * d);
  daug::testing::RowMatrix q = daug::testing::clustered_unit_rows(20, d, 12, 0.2f, 22);
  q.values.insert(q.values.end(), db.row(5), db.row(5) + d);
  q.values.insert(q.values.end(), db.row(42), db.row(42) + d);
  q.rows += 2;
  EXPECT_THROW(s.search(q.view(), 3), daug::Error) << "search() before add() must throw";

  const daug::testing::RowMatrix keep = db;
  std::vector<float> buffer = db.values;
  s.add(FloatRows{buffer.data(), n, d});
  std::fill(buffer.begin(), buffer.end(), 7.f);  // the caller reuses its buffer
  EXPECT_EQ(s.size(), n);
  EXPECT_EQ(s.dim(), d);

  for (int64_t k : {int64_t{1}, int64_t{10}, n + 5}) {
    SCOPED_TRACE("k = " + std::to_string(k));
    const auto got = s.search(q.view(), k);
    ASSERT_EQ(got.size(), static_cast<size_t>(q.rows)) << "one SearchHits per query";
    const auto truth = daug::testing::brute_force_search(keep, q, k);
    for (int64_t i = 0; i < q.rows; ++i) {
      const auto& h = got[static_cast<size_t>(i)];
      ASSERT_EQ(h.rows.size(), h.scores.size()) << "query " << i << ": rows and scores differ in length";
      EXPECT_GE(h.rows.size(), 1u) << "query " << i << ": no hits";
      EXPECT_LE(static_cast<int64_t>(h.rows.size()), std::min(k, n)) << "query " << i << ": more than min(k, size())";
      std::set<int64_t> seen;
      for (size_t j = 0; j < h.rows.size(); ++j) {
        const int64_t r = h.rows[j];
        ASSERT_TRUE(r >= 0 && r < n) << "query " << i << " hit " << j << ": row " << r << " outside [0, " << n << ")";
        EXPECT_TRUE(seen.insert(r).second) << "query " << i << ": row " << r << " returned twice";
        double ip = 0;
        for (int64_t c = 0; c < d; ++c) ip += static_cast<double>(q.row(i)[c]) * keep.row(r)[c];
        EXPECT_NEAR(h.scores[j], ip, 1e-4) << "query " << i << " hit " << j << " (row " << r
                                           << "): the score is not the inner product (was the database copied?)";
        if (j > 0) {
          EXPECT_GE(h.scores[j - 1], h.scores[j]) << "query " << i << ": hits not ordered by score descending at " << j;
          if (h.scores[j - 1] == h.scores[j])
            EXPECT_LT(h.rows[j - 1], h.rows[j])
                << "query " << i << ": equal scores not ordered by row ascending at " << j;
        }
      }
      if (exact) {
        // The exact top-k up to float32 rounding: at every rank the returned row's true score is the brute force's
        // score at that rank (rows whose scores differ by float rounding only may swap places).
        const auto& t = truth[static_cast<size_t>(i)];
        ASSERT_EQ(h.rows.size(), t.rows.size())
            << "query " << i << ": not the exact top-k (an exact search returns min(k, size()) hits)";
        for (size_t j = 0; j < h.rows.size(); ++j) {
          double ip = 0;
          for (int64_t c = 0; c < d; ++c) ip += static_cast<double>(q.row(i)[c]) * keep.row(h.rows[j])[c];
          EXPECT_NEAR(ip, t.scores[j], 2e-6) << "query " << i << " rank " << j << ": row " << h.rows[j]
                                             << " instead of row " << t.rows[j] << ": not the exact top-k";
        }
      }
    }
    if (exact && k >= 3) {
      const auto& dup = got[20].rows;  // the query equal to row 5
      EXPECT_EQ(std::vector<int64_t>(dup.begin(), dup.begin() + 3), (std::vector<int64_t>{5, 100, 300}))
          << "three equal rows must come first, by row ascending";
    }
  }
  EXPECT_TRUE(s.search(FloatRows{nullptr, 0, d}, 5).empty()) << "no queries: no results";

  daug::testing::RowMatrix wrong = daug::testing::gaussian_rows(2, d - 1, 23);
  try {
    s.search(wrong.view(), 5);
    ADD_FAILURE() << "queries of dimension " << d - 1 << " against a dimension-" << d << " database must throw";
  } catch (const daug::Error& e) {
    const std::string m = e.what();
    EXPECT_TRUE(m.find(std::to_string(d)) != std::string::npos && m.find(std::to_string(d - 1)) != std::string::npos)
        << "the dimension error must name the expected " << d << " and the found " << d - 1 << ": " << m;
  }
  EXPECT_THROW(s.search(q.view(), 0), daug::Error) << "k = 0 must throw";
}

// ---- Stage --------------------------------------------------------------------------------------------------

Snapshot snapshot(const std::filesystem::path& dir) {
  Snapshot out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string rel = std::filesystem::relative(e.path(), dir).string();
    if (e.is_directory()) {
      out[rel + "/"] = FileStamp{-1, 0};
      continue;
    }
    auto mt = std::filesystem::last_write_time(e.path()).time_since_epoch();
    out[rel] = FileStamp{static_cast<int64_t>(e.is_regular_file() ? e.file_size() : 0),
                         static_cast<int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(mt).count())};
  }
  return out;
}

void check_second_run_noop(const Snapshot& before, const Snapshot& after, const std::string& log,
                           const std::vector<std::string>& stages) {
  for (const auto& [path, st] : before) {
    auto it = after.find(path);
    if (it == after.end())
      ADD_FAILURE() << "the second run removed " << path;
    else if (!(it->second == st))
      ADD_FAILURE() << "the second run modified " << path << " (size " << st.size << " → " << it->second.size
                    << ", mtime " << st.mtime_ns << " → " << it->second.mtime_ns << ")";
  }
  for (const auto& [path, st] : after)
    if (!before.count(path)) ADD_FAILURE() << "the second run added " << path;
  for (const auto& s : stages) {
    const std::regex cached("stage \\[" + s + "\\][^\\n]*cached");
    const std::regex ran("stage \\[" + s + "\\] finished");
    EXPECT_TRUE(std::regex_search(log, cached)) << "the second run did not report stage [" << s << "] as cached";
    EXPECT_FALSE(std::regex_search(log, ran)) << "the second run ran stage [" << s << "] again";
  }
}

}  // namespace daug::conformance
