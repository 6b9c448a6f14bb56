#pragma once
// Helpers shared by every test: a BuildContext that serves hand-made components, temp dirs, tensor asserts.
#include <daug/build_context.h>
#include <daug/stage.h>
#include <daug/tensor.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace daug::testing {

/// The device of the device-aware tests: DAUG_TEST_DEVICE ("cpu" when unset; "cuda" or "cuda:N"). A CUDA device
/// this LibTorch or machine cannot use falls back to "cpu", so CPU tests run unchanged; tests that need CUDA use
/// DAUG_REQUIRE_CUDA(). A value that is not a device throws daug::ConfigError.
std::string test_device();
/// The CUDA device the `cuda` tests use: DAUG_TEST_DEVICE when it names one, else "cuda".
std::string cuda_test_device();
/// "" when tensors can be placed on CUDA device `device` ("cuda" or "cuda:N") here; else why not (this LibTorch
/// has no CUDA, or fewer GPUs are visible).
std::string cuda_unavailable_reason(const std::string& device);

/// First statement of a test that needs CUDA: skips it (GTEST_SKIP, with the reason) when there is none.
#define DAUG_REQUIRE_CUDA()                                                                                      \
  do {                                                                                                           \
    const std::string daug_cuda_why = ::daug::testing::cuda_unavailable_reason(::daug::testing::cuda_test_device()); \
    if (!daug_cuda_why.empty()) GTEST_SKIP() << "needs CUDA (" << ::daug::testing::cuda_test_device()               \
                                             << "): " << daug_cuda_why;                                          \
  } while (0)

/// A BuildContext whose components are registered by the test (no TOML, no plugin loading).
class TestContext : public BuildContext {
 public:
  TestContext();
  ~TestContext() override;
  void add(const std::string& table, std::shared_ptr<Component> c) { components_[table] = std::move(c); }
  /// Every table requested through component<T>() so far, in order (a plugin's declared dependencies).
  const std::vector<std::string>& requests() const { return requests_; }
  /// test_device() unless set_device() chose another (parity tests build CPU and CUDA components side by side).
  std::string device() const override { return device_; }
  void set_device(std::string d) { device_ = std::move(d); }
  uint64_t seed() const override { return 0; }
  std::filesystem::path run_dir() const override { return dir_; }
  ConfigView config(const std::string& table) const override;
  std::string table() const override { return table_; }
  /// The table name reported by table() (tests of error messages set it).
  void set_table(std::string t) { table_ = std::move(t); }

 protected:
  std::shared_ptr<Component> component_any(const std::string& table, const char* interface, Use use) override;

 private:
  std::filesystem::path dir_;
  std::string device_ = test_device();
  std::string table_;
  std::vector<std::string> requests_;
  std::map<std::string, std::shared_ptr<Component>> components_;
};

/// A stand-in for an upstream stage in unit tests: declares `outputs` and does nothing.
class StubStage final : public Stage {
 public:
  explicit StubStage(std::vector<Artifact> outputs) : outputs_(std::move(outputs)) {}
  std::vector<Artifact> outputs() const override { return outputs_; }
  void run(StageContext&) override {}
  std::string describe() const override { return "stub"; }

 private:
  std::vector<Artifact> outputs_;
};

/// The StageContext `daug run` would give `stage` writing into `out`: its declared outputs, and upstream artifacts
/// resolved as `upstream_root / <table> / <file>`, the file coming from the Stage registered for <table> in
/// `build` (e.g. a StubStage). `out` is created.
StageContext stage_context(const Stage& stage, TestContext& build, const std::filesystem::path& out,
                           const std::filesystem::path& upstream_root = {}, int shard_index = 0, int shard_count = 1,
                           bool strict = false);

/// Where a StageContext finds upstream artifacts: (stage table, artifact name) → path.
using ArtifactLookup = std::function<std::filesystem::path(const std::string& table, const std::string& name)>;
/// The lookup of a stage that reads exactly one upstream artifact: expects (`table`, `name`) and returns `file`.
ArtifactLookup single_artifact(std::string table, std::string name, std::filesystem::path file);
/// Runs `stage` once, writing into `out` (created), in a fresh TestContext; upstream artifacts from `artifact`.
void run_stage(Stage& stage, const std::filesystem::path& out, ArtifactLookup artifact, bool strict = false);

/// A fresh empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// Writes `text` to `path` (creating parent directories).
void write_text(const std::filesystem::path& path, const std::string& text);

/// Max |a − b| over all elements (shapes must match).
double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

/// Runs `f`, expects it to throw something derived from std::exception whose what() contains every needle.
template <class F>
void expect_error_contains(F&& f, std::initializer_list<std::string> needles) {
  try {
    f();
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nmissing: " << n;
    return;
  }
  ADD_FAILURE() << "expected an exception";
}

/// A TCP port on 127.0.0.1 that was free a moment ago (MASTER_PORT of multi-process tests; never a fixed port).
int free_local_port();

}  // namespace daug::testing
