// Out-of-line destructors (key functions: one home for each vtable/typeinfo across all plugins), labels,
// Source::split and logging.
#include <daug/backbone.h>
#include <daug/build_context.h>
#include <daug/fingerprint.h>
#include <daug/seed.h>
#include <daug/classifier.h>
#include <daug/command.h>
#include <daug/criterion.h>
#include <daug/detail/log_console.h>
#include <daug/error.h>
#include <daug/generator.h>
#include <daug/guidance.h>
#include <daug/heatmap_composer.h>
#include <daug/labels.h>
#include <daug/localization_truth.h>
#include <daug/log.h>
#include <daug/source.h>
#include <daug/stage.h>
#include <daug/trainable.h>
#include <daug/vector_search.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <mutex>

namespace daug {

Error::~Error() = default;
ConfigError::~ConfigError() = default;
DataError::~DataError() = default;
PluginError::~PluginError() = default;
Component::~Component() = default;
Trainable::~Trainable() = default;
BuildContext::~BuildContext() = default;

std::string BuildContext::where(const std::string& key) const {
  const std::string t = table();
  if (t.empty()) return key;
  try {
    const ConfigView view = config(t);
    return fmt::format("{}: {}.{}", view.location(key).str(), view.label(), key);
  } catch (const ConfigError&) {  // a context without a config document (tests, code-built components)
    return fmt::format("[{}].{}", t, key);
  }
}

uint64_t BuildContext::seed_for(const std::string& purpose) const {
  return mix_seed(seed(), stable_hash(table() + "/" + purpose));
}

uint64_t stable_hash(std::string_view bytes) {
  constexpr uint64_t mul = (uint64_t{0xc6a4a793} << 32) + uint64_t{0x5bd1e995};
  auto shift_mix = [](uint64_t v) { return v ^ (v >> 47); };
  auto load_le = [](const char* p, size_t n) {
    uint64_t r = 0;
    for (size_t i = n; i-- > 0;) r = (r << 8) + static_cast<unsigned char>(p[i]);
    return r;
  };
  const size_t len = bytes.size();
  const size_t aligned = len & ~size_t{7};
  uint64_t hash = uint64_t{0xc70f6907} ^ (static_cast<uint64_t>(len) * mul);
  for (size_t i = 0; i < aligned; i += 8) {
    hash ^= shift_mix(load_le(bytes.data() + i, 8) * mul) * mul;
    hash *= mul;
  }
  if (len & 7) {
    hash ^= load_le(bytes.data() + aligned, len & 7);
    hash *= mul;
  }
  hash = shift_mix(hash) * mul;
  return shift_mix(hash);
}

uint64_t mix_seed(uint64_t seed, uint64_t salt) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (salt + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
Guidance::~Guidance() = default;
Classifier::~Classifier() = default;
Generator::~Generator() = default;
HeatmapComposer::~HeatmapComposer() = default;
Backbone::~Backbone() = default;
Criterion::~Criterion() = default;
VectorSearch::~VectorSearch() = default;
Source::~Source() = default;
LocalizationTruth::~LocalizationTruth() = default;
std::filesystem::path LocalizationTruth::truth_mask(const std::string&) const { return {}; }
const LocalizationTruth* localization_truth(const Source& source) {
  return dynamic_cast<const LocalizationTruth*>(&source);
}

std::string Source::fingerprint() const {
  // Chained per line (no whole-dataset string: MIMIC-CXR's reports alone are hundreds of MB).
  uint64_t h = 0;
  auto add = [&h](const std::string& line) { h = mix_seed(h, stable_hash(line)); };
  const auto& g = superclasses();
  for (size_t k = 0; k < g.names.size(); ++k) add(fmt::format("class {} = {}", g.names[k], fmt::join(g.members[k], ",")));
  std::vector<std::filesystem::path> images;
  images.reserve(samples().size());
  for (const auto& s : samples()) {
    add(fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}", s.id, s.split, s.image.string(), s.study, s.patient,
                    s.report_generated ? 1 : 0, fmt::join(s.labels, ","), s.report));
    images.push_back(s.image);
  }
  return fmt::format("{} samples {:016x}; files {}", samples().size(), h, files_fingerprint(label_files(), images));
}
Stage::~Stage() = default;
CommandContext::~CommandContext() = default;
Command::~Command() = default;

std::string Stage::summary(const std::filesystem::path& output_dir) const {
  for (const auto& a : outputs())
    if (a.name == artifacts::kSummary) {
      std::ifstream in(output_dir / a.file);
      std::stringstream ss;
      ss << in.rdbuf();
      return ss.str();
    }
  return {};
}

int chexpert_index(const std::string& name) {
  for (size_t i = 0; i < kChexpertClasses.size(); ++i)
    if (name == kChexpertClasses[i]) return static_cast<int>(i);
  return -1;
}

SuperClassGrouping SuperClassGrouping::released() {
  return from_names({"No Finding", "Enlarged Cardiomediastinum+Cardiomegaly", "Lung Lesion",
                     "Consolidation+Edema+Pneumonia", "Atelectasis+Pneumothorax",
                     "Pleural Effusion+Pleural Other", "Support Devices"},
                    {{"No Finding"},
                     {"Enlarged Cardiomediastinum", "Cardiomegaly"},
                     {"Lung Lesion"},
                     {"Consolidation", "Edema", "Pneumonia"},
                     {"Atelectasis", "Pneumothorax"},
                     {"Pleural Effusion", "Pleural Other"},
                     {"Support Devices"}},
                    "released grouping");
}

SuperClassGrouping SuperClassGrouping::from_names(const std::vector<std::string>& names,
                                                  const std::vector<std::vector<std::string>>& members,
                                                  const std::string& where) {
  DAUG_CHECK_AS(ConfigError, !names.empty(), where, ": the super-class grouping must have at least one class");
  DAUG_CHECK_AS(ConfigError, names.size() == members.size(), where, ": expected one member list per super-class name (",
                names.size(), " names), but got ", members.size(), " member lists");
  SuperClassGrouping g;
  g.names = names;
  for (size_t k = 0; k < members.size(); ++k) {
    DAUG_CHECK_AS(ConfigError, !members[k].empty(), where, ": super-class '", names[k], "' has no members");
    std::vector<int> idx;
    for (const auto& m : members[k]) {
      int i = chexpert_index(m);
      if (i < 0) {
        std::vector<std::string> valid(kChexpertClasses.begin(), kChexpertClasses.end());
        throw ConfigError(fmt::format("{}: unknown class '{}' in super-class '{}'; valid classes: {}", where, m,
                                      names[k], fmt::join(valid, ", ")));
      }
      idx.push_back(i);
    }
    g.members.push_back(std::move(idx));
  }
  return g;
}

int SuperClassGrouping::index_of(const std::string& name, const std::string& where) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int>(i);
  throw ConfigError(fmt::format("{}: '{}' is not a super-class of the grouping; valid: {}", where, name,
                                fmt::join(names, ", ")));
}

std::vector<float> SuperClassGrouping::pool(const std::vector<float>& labels14) const {
  DAUG_CHECK(labels14.size() == kChexpertClasses.size(), "expected 14 labels, but got ", labels14.size());
  std::vector<float> out(names.size(), 0.0f);
  for (size_t k = 0; k < members.size(); ++k)
    for (int i : members[k])
      if (!std::isnan(labels14[i]) && labels14[i] > 0.5f) out[k] = 1.0f;
  return out;
}

std::vector<const Sample*> Source::split(const std::string& which) const {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t p = which.find('+', start);
    parts.push_back(which.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  for (const auto& part : parts)
    DAUG_CHECK_AS(ConfigError, part == "train" || part == "val" || part == "test" || part == "all",
                  "split must be train, val, test, all, or a '+' join of them, but got '", which, "'");
  std::vector<const Sample*> out;
  for (const auto& s : samples())
    for (const auto& part : parts)
      if (part == "all" || s.split == part) {
        out.push_back(&s);
        break;
      }
  DAUG_CHECK_AS(DataError, !out.empty(), "split '", which, "' of ", describe(), " has no images (",
                samples().size(), " images in all)");
  return out;
}

namespace log {
namespace {
constexpr const char* kConsolePattern = "%^[%H:%M:%S %l]%$ %v";
std::shared_ptr<spdlog::logger>& logger() {
  // Built once; sinks are swapped by the core. Not a plugin object (lives in libdaug_sdk.so).
  static std::shared_ptr<spdlog::logger> l = [] {
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    console->set_pattern(kConsolePattern);
    auto lg = std::make_shared<spdlog::logger>("daug", console);
    lg->set_level(spdlog::level::info);
    lg->flush_on(spdlog::level::info);
    return lg;
  }();
  return l;
}
std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}
spdlog::level::level_enum to_spd(Level l) {
  switch (l) {
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warn: return spdlog::level::warn;
    case Level::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}
}  // namespace

void write(Level level, std::string_view message) { logger()->log(to_spd(level), "{}", message); }

namespace {
constexpr const char* kFilePattern = "[%Y-%m-%d %H:%M:%S.%e %l] %v";
std::ostringstream& held_messages() {
  static std::ostringstream s;
  return s;
}
/// Removes the sink holding messages for the next file sink; returns whether there was one.
bool drop_held_sink() {
  auto& sinks = logger()->sinks();
  auto it = std::remove_if(sinks.begin(), sinks.end(), [](const auto& s) {
    return dynamic_cast<spdlog::sinks::ostream_sink_mt*>(s.get()) != nullptr;
  });
  const bool had = it != sinks.end();
  sinks.erase(it, sinks.end());
  return had;
}
}  // namespace

void hold_for_file_sink() {
  std::lock_guard<std::mutex> lock(sink_mutex());
  drop_held_sink();
  held_messages().str("");
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(held_messages());
  sink->set_pattern(kFilePattern);
  logger()->sinks().push_back(sink);
}

void add_file_sink(const std::string& path) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  if (drop_held_sink()) {
    std::ofstream(path, std::ios::binary | std::ios::app) << held_messages().str();
    held_messages().str("");
  }
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
  sink->set_pattern(kFilePattern);
  logger()->sinks().push_back(sink);
}

void remove_file_sinks() {
  std::lock_guard<std::mutex> lock(sink_mutex());
  auto& sinks = logger()->sinks();
  sinks.erase(std::remove_if(sinks.begin(), sinks.end(),
                             [](const auto& s) {
                               return dynamic_cast<spdlog::sinks::basic_file_sink_mt*>(s.get()) != nullptr;
                             }),
              sinks.end());
  drop_held_sink();
  held_messages().str("");
}

void set_level(Level level) { logger()->set_level(to_spd(level)); }

void set_console(Level min_level, const std::string& prefix) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  for (auto& s : logger()->sinks())
    if (dynamic_cast<spdlog::sinks::stderr_color_sink_mt*>(s.get()) != nullptr) {
      s->set_level(min_level == Level::debug ? spdlog::level::trace : to_spd(min_level));
      s->set_pattern(prefix + kConsolePattern);
    }
}
}  // namespace log

}  // namespace daug
