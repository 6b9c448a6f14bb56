#pragma once
// Helpers shared by every test: a BuildContext that serves hand-made components, temp dirs, tensor asserts.
#include <daug/build_context.h>
#include <daug/tensor.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace daug::testing {

/// A BuildContext whose components are registered by the test (no TOML, no plugin loading).
class TestContext : public BuildContext {
 public:
  TestContext();
  ~TestContext() override;
  void add(const std::string& table, std::shared_ptr<Component> c) { components_[table] = std::move(c); }
  std::string device() const override { return "cpu"; }
  uint64_t seed() const override { return 0; }
  std::filesystem::path run_dir() const override { return dir_; }
  ConfigView config(const std::string& table) const override;
  std::string table() const override { return table_; }
  /// The table name reported by table() (tests of error messages set it).
  void set_table(std::string t) { table_ = std::move(t); }

 protected:
  std::shared_ptr<Component> component_any(const std::string& table, const char* interface) override;

 private:
  std::filesystem::path dir_;
  std::string table_;
  std::map<std::string, std::shared_ptr<Component>> components_;
};

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

}  // namespace daug::testing
