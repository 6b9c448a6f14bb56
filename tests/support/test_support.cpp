#include "test_support.h"

#include <daug/error.h>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/version.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace daug::testing {

std::string cuda_unavailable_reason(const std::string& device) {
  int64_t index = 0;
  if (device != "cuda") {
    const std::string n = device.rfind("cuda:", 0) == 0 ? device.substr(5) : std::string();
    if (n.empty() || n.size() > 6 || n.find_first_not_of("0123456789") != std::string::npos)
      throw ConfigError("DAUG_TEST_DEVICE must be \"cpu\", \"cuda\" or \"cuda:N\", but got \"" + device + "\"");
    index = std::stoll(n);
  }
  if (!at::hasCUDA()) return "this LibTorch (" TORCH_VERSION ") has no CUDA, or no CUDA driver/GPU is present";
  const auto count = static_cast<int64_t>(at::getNumGPUs());
  if (index >= count) return device + " is not among the " + std::to_string(count) + " visible CUDA device(s)";
  return {};
}

std::string test_device() {
  const char* env = std::getenv("DAUG_TEST_DEVICE");
  const std::string d = env && *env ? env : "cpu";
  if (d == "cpu") return d;
  const std::string why = cuda_unavailable_reason(d);
  if (why.empty()) return d;
  static const bool warned = [&] {  // said once per test process, not silently
    std::fprintf(stderr, "DAUG_TEST_DEVICE=%s: %s; device-aware tests run on cpu, cuda tests are skipped\n",
                 d.c_str(), why.c_str());
    return true;
  }();
  (void)warned;
  return "cpu";
}

std::string cuda_test_device() {
  const char* env = std::getenv("DAUG_TEST_DEVICE");
  const std::string d = env ? env : "";
  return d.rfind("cuda", 0) == 0 ? d : "cuda";
}

TestContext::TestContext() {
  static int counter = 0;
  dir_ = std::filesystem::temp_directory_path() /
         ("daug_ctx_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(dir_);
}

TestContext::~TestContext() {
  components_.clear();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

ConfigView TestContext::config(const std::string& table) const {
  throw ConfigError("TestContext has no configuration (asked for [" + table + "])");
}

std::shared_ptr<Component> TestContext::component_any(const std::string& table, const char* interface, Use) {
  requests_.push_back(table);
  auto it = components_.find(table);
  if (it == components_.end())
    throw ConfigError("TestContext: no component registered for [" + table + "] (wanted a " + interface + ")");
  return it->second;
}

StageContext stage_context(const Stage& stage, TestContext& build, const std::filesystem::path& out,
                           const std::filesystem::path& upstream_root, int shard_index, int shard_count, bool strict) {
  std::filesystem::create_directories(out);
  auto artifact = [&build, upstream_root](const std::string& table, const std::string& name) {
    auto upstream = build.component<Stage>(table);
    return upstream->output_path(upstream_root / table, name);
  };
  return StageContext{out, artifact, build, shard_index, shard_count, strict, stage.outputs()};
}

ArtifactLookup single_artifact(std::string table, std::string name, std::filesystem::path file) {
  return [table = std::move(table), name = std::move(name), file = std::move(file)](const std::string& t,
                                                                                    const std::string& n) {
    EXPECT_EQ(t, table);
    EXPECT_EQ(n, name);
    return file;
  };
}

void run_stage(Stage& stage, const std::filesystem::path& out, ArtifactLookup artifact, bool strict) {
  std::filesystem::create_directories(out);
  TestContext build;
  StageContext ctx{out, std::move(artifact), build, 0, 1, strict, stage.outputs()};
  stage.run(ctx);
}

TempDir::TempDir() {
  static int counter = 0;
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("daug_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary);
  f << text;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return INFINITY;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;  // the kernel picks a free one
  socklen_t len = sizeof(a);
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw std::runtime_error("free_local_port: cannot bind a socket on 127.0.0.1");
  return ntohs(a.sin_port);
}

}  // namespace daug::testing
