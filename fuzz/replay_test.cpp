// Replays every seed (fuzz/corpus/<target>/) and every past finding (fuzz/regressions/<target>/) through the
// fuzz targets in the normal build, so a fixed crash cannot come back unnoticed. An input may be rejected with a
// daug::Error; any other exception (or a crash, which fails the test binary) is a failure naming the file.
#include "fuzz_target.h"

#include <daug/error.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <set>

namespace {

// Listed here (not taken from the registry) because gtest instantiates the suite before every translation
// unit's static registration is guaranteed to have run; RegistryMatchesTheList keeps both in step.
const std::vector<std::string> kTargets = {
    "clip_weights", "config", "csv", "image", "npy", "safetensors", "tokenizer", "torch_pickle", "torch_save",
#ifdef DAUG_FUZZ_DICOM
    "dicom"  // built with DAUG_DICOM (DCMTK)
#endif
};

const std::filesystem::path kFuzzDir = std::filesystem::path(DAUG_SOURCE_DIR) / "fuzz";

std::vector<std::filesystem::path> inputs(const std::string& target, const char* kind) {
  std::vector<std::filesystem::path> out;
  const auto dir = kFuzzDir / kind / target;
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

class FuzzReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzReplay, CorpusAndRegressionsGiveNoFinding) {
  const auto& all = daug::fuzz::targets();
  auto it = all.find(GetParam());
  ASSERT_NE(it, all.end()) << "no fuzz target registered as '" << GetParam() << "'";
  const auto corpus = inputs(GetParam(), "corpus");
  EXPECT_FALSE(corpus.empty()) << "fuzz/corpus/" << GetParam() << "/ has no seed files";
  size_t accepted = 0, rejected = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    for (const auto& file : inputs(GetParam(), kind)) {
      std::ifstream f(file, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      try {
        it->second(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        ++accepted;
      } catch (const daug::Error&) {
        ++rejected;
      } catch (const std::exception& e) {
        const std::string what = e.what();  // c10::Error appends a long C++ backtrace: keep its first line
        ADD_FAILURE() << file.string()
                      << ": an exception other than daug::Error escaped: " << what.substr(0, what.find('\n'));
      }
    }
  }
  // The seeds exist to reach deep code: at least one must be a valid file the parser accepts.
  EXPECT_GT(accepted, 0u) << "no seed of fuzz/corpus/" << GetParam() << "/ was accepted (" << rejected << " rejected)";
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, ::testing::ValuesIn(kTargets),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(FuzzReplayRegistry, RegistryMatchesTheList) {
  std::set<std::string> registered;
  for (const auto& [name, fn] : daug::fuzz::targets()) registered.insert(name);
  EXPECT_EQ(registered, std::set<std::string>(kTargets.begin(), kTargets.end()));
  // Every corpus/regressions folder belongs to a target (a renamed target must move its files).
  for (const char* kind : {"corpus", "regressions"})
    for (const auto& e : std::filesystem::directory_iterator(kFuzzDir / kind))
      if (e.is_directory() && e.path().filename() != "dicom")  // dicom: only in DAUG_DICOM builds
        EXPECT_TRUE(registered.count(e.path().filename().string())) << e.path();
}

}  // namespace
