#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/error.h>
#include <daug/heatmap_composer.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>

#include "test_support.h"

using daug::core::PluginLoader;
using daug::testing::expect_error_contains;

namespace {
const std::string kFx = DAUG_FIXTURE_DIR;
std::string fx(const std::string& dir, const std::string& lib) { return kFx + "/" + dir + "/libdaug-plugin-" + lib + ".so"; }
}  // namespace

TEST(PluginLoader, LoadsAGoodPluginAndBuildsIt) {
  PluginLoader loader({kFx + "/good"});
  loader.load_all();
  const auto& p = loader.find("HeatmapComposer", "scale", "here");
  EXPECT_EQ(p.name, "scale");
  EXPECT_EQ(p.summary, "test fixture");
  auto doc = daug::core::parse_config("[s]\nplugin = \"scale\"\nfactor = 3.0\n", "t.toml");
  daug::testing::TempDir dir;
  daug::core::Experiment exp(loader, doc, dir.path());
  auto c = exp.component<daug::HeatmapComposer>("s");
  auto out = c->compose(at::ones({1, 1, 2, 2}), {});
  EXPECT_DOUBLE_EQ(out.sum().item<double>(), 12.0);
  EXPECT_EQ(exp.component<daug::HeatmapComposer>("s").get(), c.get()) << "components are shared per table";
}

TEST(PluginLoader, RefusesWrongAbiWithExpectedVsFound) {
  PluginLoader loader;
  expect_error_contains([&] { loader.load_library(fx("bad_abi", "fixture_bad_abi")); },
                        {"libdaug-plugin-fixture_bad_abi.so", "SDK ABI version 999", "expects ABI version " + std::to_string(DAUG_SDK_ABI_VERSION)});
}

TEST(PluginLoader, RefusesLibraryWithoutManifest) {
  PluginLoader loader;
  expect_error_contains([&] { loader.load_library(fx("no_manifest", "fixture_no_manifest")); },
                        {"libdaug-plugin-fixture_no_manifest.so", "not a daug plugin", "daug_plugin_manifest"});
}

TEST(PluginLoader, DuplicateNameNamesBothFiles) {
  PluginLoader loader({kFx + "/good", kFx + "/dup"});
  expect_error_contains([&] { loader.load_all(); },
                        {"duplicate HeatmapComposer plugin name 'scale'", "libdaug-plugin-fixture_good.so",
                         "libdaug-plugin-fixture_dup.so"});
}

TEST(PluginLoader, MissingFileIsAPluginError) {
  PluginLoader loader;
  EXPECT_THROW(loader.load_library(kFx + "/nope/libdaug-plugin-nope.so"), daug::PluginError);
}

TEST(PluginLoader, UnknownNameListsAvailableAndSuggests) {
  PluginLoader loader({kFx + "/good"});
  loader.load_all();
  expect_error_contains([&] { loader.find("HeatmapComposer", "scal", "x.toml:3:10"); },
                        {"x.toml:3:10: no HeatmapComposer plugin named 'scal'", "Available: ", "scale",
                         "Did you mean 'scale'?"});
  expect_error_contains([&] { loader.find("Guidance", "scale", "here"); },
                        {"no Guidance plugin named 'scale'", "it is a HeatmapComposer plugin"});
}

TEST(PluginLoader, ThrowingConstructorIsReportedWithContext) {
  PluginLoader loader;
  loader.load_library(fx("throws", "fixture_throws"));
  auto doc = daug::core::parse_config("[s]\nplugin = \"throwing\"\n", "t.toml");
  daug::testing::TempDir dir;
  daug::core::Experiment exp(loader, doc, dir.path());
  try {
    exp.component<daug::HeatmapComposer>("s");
    FAIL() << "expected DataError";
  } catch (const daug::DataError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("while building [s] (plugin 'throwing'"), std::string::npos) << m;
    EXPECT_NE(m.find("fixture constructor failed on purpose"), std::string::npos) << m;
  }
}

TEST(PluginLoader, UnknownKeyInPluginTableIsRejectedBeforeConstruction) {
  PluginLoader loader({kFx + "/good"});
  loader.load_all();
  auto doc = daug::core::parse_config("[s]\nplugin = \"scale\"\nfactr = 3.0\n", "t.toml");
  daug::testing::TempDir dir;
  daug::core::Experiment exp(loader, doc, dir.path());
  expect_error_contains([&] { exp.component<daug::HeatmapComposer>("s"); },
                        {"t.toml:3:9: unknown key 'factr' in [s]; known keys: factor, mode", "Did you mean 'factor'"});
}

TEST(PluginLoader, MissingTableAndMissingPluginKeyAreErrors) {
  PluginLoader loader({kFx + "/good"});
  loader.load_all();
  auto doc = daug::core::parse_config("[s]\nfactor = 3.0\n", "t.toml");
  daug::testing::TempDir dir;
  daug::core::Experiment exp(loader, doc, dir.path());
  expect_error_contains([&] { exp.component<daug::HeatmapComposer>("nope"); },
                        {"needs a HeatmapComposer from table [nope]", "no such table"});
  expect_error_contains([&] { exp.component<daug::HeatmapComposer>("s"); }, {"table [s] must name its plugin"});
}

TEST(PluginLoader, SearchPathsIncludeEnvironment) {
  ::setenv("DAUG_PLUGIN_PATH", "/a:/b", 1);
  PluginLoader loader({"/x"});
  ::unsetenv("DAUG_PLUGIN_PATH");
  ASSERT_GE(loader.search_paths().size(), 3u);
  EXPECT_EQ(loader.search_paths()[0], "/x");
  EXPECT_EQ(loader.search_paths()[1], "/a");
  EXPECT_EQ(loader.search_paths()[2], "/b");
}

// A truncated library used to reach dlopen(), which maps pages past the end of the file: the first touch killed
// the process with SIGBUS and no message. It is now refused before dlopen with the file and what is wrong.
TEST(PluginLoader, TruncatedLibraryIsRefusedBeforeDlopen) {
  daug::testing::TempDir dir;
  const auto good = fx("good", "fixture_good");
  const auto size = std::filesystem::file_size(good);
  for (uint64_t keep : {size / 2, size - 1, uint64_t{20}}) {
    const auto lib = dir / "libdaug-plugin-trunc.so";
    std::filesystem::copy_file(good, lib, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::resize_file(lib, keep);
    PluginLoader loader({dir.path()});
    try {
      loader.load_all();
      ADD_FAILURE() << "a library cut to " << keep << " of " << size << " bytes was loaded";
    } catch (const daug::PluginError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(lib.string()), std::string::npos) << m;
      EXPECT_NE(m.find(fmt::format("({} bytes;", keep)), std::string::npos) << m;
      if (keep > 64) EXPECT_NE(m.find("past the end of the file"), std::string::npos) << m;
      else EXPECT_NE(m.find("the ELF header needs 64 bytes, but the file ends at byte 20"), std::string::npos) << m;
    }
  }
}

TEST(PluginLoader, GarbageFileNamedLikeAPluginIsRefused) {
  daug::testing::TempDir dir;
  daug::testing::write_text(dir / "libdaug-plugin-garbage.so", "GIF89a not a library at all");
  PluginLoader loader({dir.path()});
  expect_error_contains([&] { loader.load_all(); },
                        {(dir / "libdaug-plugin-garbage.so").string(), "expected the ELF signature 7f 45 4c 46",
                         "starts with '47 49 46 38 39 61 20 6e'"});
}

TEST(PluginLoader, PluginPathThatDoesNotExistIsAnError) {
  daug::testing::TempDir dir;
  PluginLoader loader({dir / "nope"});
  try {
    loader.load_all();
    FAIL() << "a --plugin-path that does not exist was ignored";
  } catch (const daug::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--plugin-path " + (dir / "nope").string() + ": no such plugin directory"),
              std::string::npos)
        << e.what();
  }
  ::setenv("DAUG_PLUGIN_PATH", (dir / "gone").c_str(), 1);
  PluginLoader from_env;
  ::unsetenv("DAUG_PLUGIN_PATH");
  expect_error_contains([&] { from_env.load_all(); }, {"DAUG_PLUGIN_PATH " + (dir / "gone").string()});
}

// The start-up check that the LibTorch loaded at run time is the one daug was built against (issue 10 item 7).
namespace {
// Debian's python3-torch / libtorch 1.13.1 on this machine: torch.__config__.show() (= at::show_config()),
// the CXX_FLAGS shortened.
const char* kDebian113 =
    "PyTorch built with:\n"
    "  - GCC 12.2\n"
    "  - C++ Version: 201402\n"
    "  - Intel(R) MKL-DNN v2.6.3 (Git Hash N/A)\n"
    "  - OpenMP 201511 (a.k.a. OpenMP 4.5)\n"
    "  - LAPACK is enabled (usually provided by MKL)\n"
    "  - CPU capability usage: AVX2\n"
    "  - Build settings: BLAS_INFO=generic, BUILD_TYPE=RelWithDebInfo, CXX_COMPILER=/usr/bin/c++, CXX_FLAGS=-Wdate-time "
    "-D_FORTIFY_SOURCE=2 -g -O2 -fopenmp -DUSE_PYTORCH_QNNPACK -O2 -fPIC -Wno-narrowing, LAPACK_INFO=generic, "
    "PERF_WITH_AVX=1, PERF_WITH_AVX2=1, PERF_WITH_AVX512=1, TORCH_VERSION=1.13.0, USE_CUDA=OFF, USE_CUDNN=OFF, "
    "USE_EXCEPTION_PTR=1, USE_GFLAGS=ON, USE_GLOG=ON, USE_MKLDNN=ON, USE_MPI=OFF, USE_NCCL=OFF, USE_NNPACK=OFF, "
    "USE_OPENMP=ON, USE_ROCM=OFF, \n";
// The layout of a pip CUDA wheel's text (2.x: "CUDA Runtime", "CuDNN", CUDA_VERSION, the ABI flag in CXX_FLAGS),
// with the values of the device machine's 2.11.0+cu130; not captured from that machine (none was available).
const char* kPip211Cuda =
    "PyTorch built with:\n"
    "  - GCC 13.3\n"
    "  - C++ Version: 201703\n"
    "  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 for Intel(R) 64 architecture\n"
    "  - OpenMP 201511 (a.k.a. OpenMP 4.5)\n"
    "  - CPU capability usage: AVX512\n"
    "  - CUDA Runtime 13.0\n"
    "  - NVCC architecture flags: -gencode;arch=compute_90,code=sm_90;-gencode;arch=compute_100,code=sm_100\n"
    "  - CuDNN 91.5\n"
    "  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, COMMIT_SHA=0123abcd, CUDA_VERSION=13.0, "
    "CUDNN_VERSION=9.15.0, CXX_COMPILER=/opt/rh/gcc-toolset-13/root/usr/bin/c++, CXX_FLAGS= -D_GLIBCXX_USE_CXX11_ABI=1 "
    "-fabi-version=11 -fvisibility-inlines-hidden -DUSE_PTHREADPOOL -O2 -fPIC, LAPACK_INFO=mkl, "
    "TORCH_VERSION=2.11.0, USE_CUDA=ON, USE_CUDNN=ON, USE_CUSPARSELT=1, USE_NCCL=1, USE_ROCM=OFF, \n";
}  // namespace

TEST(LoadedLibTorch, ParsesDebian113AndPip2xShowConfigTexts) {
  const auto deb = daug::core::parse_torch_config(kDebian113);
  EXPECT_EQ(deb.version, "1.13.0");
  EXPECT_FALSE(deb.cuda);
  EXPECT_EQ(deb.cxx11_abi, -1) << "Debian's CXX_FLAGS do not state the ABI";
  const auto pip = daug::core::parse_torch_config(kPip211Cuda);
  EXPECT_EQ(pip.version, "2.11.0");
  EXPECT_TRUE(pip.cuda);
  EXPECT_EQ(pip.cxx11_abi, 1);
  // Old wheels wrote USE_CUDA=True; a text without build settings states nothing.
  EXPECT_TRUE(daug::core::parse_torch_config("  - Build settings: TORCH_VERSION=1.4.0, USE_CUDA=True, ").cuda);
  const auto none = daug::core::parse_torch_config("PyTorch built with:\n  - GCC 9\n");
  EXPECT_EQ(none.version, "");
  EXPECT_FALSE(none.cuda);
  EXPECT_EQ(none.cxx11_abi, -1);
}

TEST(LoadedLibTorch, MismatchSaysBuiltForWhatAndLoadedWhat) {
  using daug::core::libtorch_mismatch;
  const auto pip = daug::core::parse_torch_config(kPip211Cuda);
  EXPECT_EQ(libtorch_mismatch(pip, "2.11.0", true, 1), "");
  // A pip upgrade under the build: same sonames, newer library.
  const std::string upgraded = libtorch_mismatch(pip, "2.10.0", true, 1);
  for (const char* needle : {"built for LibTorch 2.10.0 (CUDA)", "is 2.11.0 (CUDA)", "version 2.11.0 instead of 2.10.0",
                             "cmake_prefix_path"})
    EXPECT_NE(upgraded.find(needle), std::string::npos) << upgraded << "\nmissing: " << needle;
  EXPECT_NE(libtorch_mismatch(pip, "2.11.0", false, 1).find("a CUDA build instead of a CPU-only one"), std::string::npos);
  EXPECT_NE(libtorch_mismatch(pip, "2.11.0", true, 0).find("_GLIBCXX_USE_CXX11_ABI=1 instead of 0"), std::string::npos);
  const auto deb = daug::core::parse_torch_config(kDebian113);
  EXPECT_EQ(libtorch_mismatch(deb, "1.13.0", false, 1), "");
  EXPECT_NE(libtorch_mismatch(deb, "1.13.0", true, 1).find("a CPU-only build instead of a CUDA one"), std::string::npos);
  EXPECT_EQ(libtorch_mismatch(daug::core::parse_torch_config(""), "2.11.0", true, 1), "")
      << "nothing stated, nothing to refuse";
}

TEST(LoadedLibTorch, TheLibraryLoadedHereIsTheOneDaugWasBuiltFor) {
  const auto loaded = daug::core::parse_torch_config(at::show_config());
  const auto built = daug::core::built_libtorch();
  EXPECT_EQ(loaded.version, built.version) << at::show_config();
  EXPECT_EQ(loaded.cuda, built.cuda);
  EXPECT_EQ(built.cxx11_abi, 1);
  EXPECT_NO_THROW(daug::core::check_loaded_libtorch());
}
