// daug::parse_torch_zip against files written by Python's torch.save (fixtures/torch_save, written by
// plugins/backbone_clip_vit/tools/write_torch_fixtures.py with Debian's python3-torch 1.13.1): values, dtypes,
// views and nesting equal what Python recorded in misc_expected.json; damaged files give DataErrors.
#include <daug/error.h>
#include <daug/torch_zip.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include "test_support.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

const std::string kDir = std::string(DAUG_SOURCE_DIR) + "/tests/sdk/fixtures/torch_save/";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

uint32_t get_u32(const std::vector<uint8_t>& b, size_t p) {
  return uint32_t(b[p]) | uint32_t(b[p + 1]) << 8 | uint32_t(b[p + 2]) << 16 | uint32_t(b[p + 3]) << 24;
}

// Where data.pkl's bytes and its central-directory CRC field are (to change the pickle and keep the CRC right).
struct PklSpan {
  size_t data = 0, size = 0, crc_field = 0;
};
PklSpan find_pkl(const std::vector<uint8_t>& b) {
  for (size_t p = 0; p + 46 < b.size(); ++p) {
    if (get_u32(b, p) != 0x02014b50u) continue;
    const size_t name_len = b[p + 28] | b[p + 29] << 8;
    const std::string name(reinterpret_cast<const char*>(&b[p + 46]), name_len);
    if (name.size() < 8 || name.compare(name.size() - 8, 8, "data.pkl") != 0) continue;
    const size_t local = get_u32(b, p + 42);
    PklSpan s;
    s.size = get_u32(b, p + 24);
    s.data = local + 30 + (b[local + 26] | b[local + 27] << 8) + (b[local + 28] | b[local + 29] << 8);
    s.crc_field = p + 16;
    return s;
  }
  ADD_FAILURE() << "no data.pkl record";
  return {};
}

void fix_crc(std::vector<uint8_t>& b, const PklSpan& s) {
  const uint32_t crc = static_cast<uint32_t>(crc32_z(crc32_z(0L, Z_NULL, 0), &b[s.data], s.size));
  for (int i = 0; i < 4; ++i) b[s.crc_field + i] = static_cast<uint8_t>(crc >> (8 * i));
}

at::ScalarType dtype_of(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float64") return at::kDouble;
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "int64") return at::kLong;
  if (name == "int32") return at::kInt;
  if (name == "uint8") return at::kByte;
  if (name == "bool") return at::kBool;
  ADD_FAILURE() << "dtype " << name;
  return at::kFloat;
}

TEST(TorchZip, ReadsWhatPythonTorchSaveWrote) {
  auto bytes = read_bytes(kDir + "misc.pt");
  daug::TorchStateDict sd = daug::parse_torch_zip(bytes.data(), bytes.size(), "misc.pt");
  std::ifstream jf(kDir + "misc_expected.json");
  const nlohmann::ordered_json want = nlohmann::ordered_json::parse(jf);  // keeps the file order
  EXPECT_EQ(sd.container, want["nested_key"].get<std::string>());
  EXPECT_EQ(sd.stripped_prefix, want["prefix"].get<std::string>());
  EXPECT_EQ(sd.locations, std::vector<std::string>{"cpu"});
  const auto& tensors = want["tensors"];
  ASSERT_EQ(sd.tensors.size(), tensors.size());
  size_t i = 0;
  for (auto it = tensors.begin(); it != tensors.end(); ++it, ++i) {
    const auto& [name, t] = sd.tensors[i];
    EXPECT_EQ(name, it.key());  // file order, prefix stripped
    EXPECT_EQ(t.scalar_type(), dtype_of(it.value()["dtype"].get<std::string>())) << name;
    EXPECT_EQ(t.sizes().vec(), it.value()["shape"].get<std::vector<int64_t>>()) << name;
    EXPECT_TRUE(t.is_contiguous()) << name;
    const auto values = it.value()["values"].get<std::vector<double>>();
    at::Tensor got = t.to(at::kDouble).flatten();
    ASSERT_EQ(got.numel(), static_cast<int64_t>(values.size())) << name;
    for (size_t k = 0; k < values.size(); ++k)
      EXPECT_EQ(got[static_cast<int64_t>(k)].item<double>(), values[k]) << name << "[" << k << "]";
  }
}

TEST(TorchZip, LegacyAndNonZipFilesAreNamedAndExplained) {
  auto legacy = read_bytes(kDir + "legacy.pt");
  daug::testing::expect_error_contains([&] { daug::parse_torch_zip(legacy.data(), legacy.size(), "legacy.pt"); },
                                       {"legacy.pt", "legacy (pre-1.6, non-zip) torch.save format"});
  const std::string text = "just some text, not a checkpoint";
  daug::testing::expect_error_contains(
      [&] { daug::parse_torch_zip(reinterpret_cast<const uint8_t*>(text.data()), text.size(), "t.pt"); },
      {"t.pt", "not a torch.save zip archive", "PK"});
  daug::testing::expect_error_contains([&] { daug::load_torch_zip(kDir + "does_not_exist.pt"); },
                                       {"does_not_exist.pt", "cannot open"});
}

TEST(TorchZip, EveryTruncationIsADataError) {
  auto bytes = read_bytes(kDir + "misc.pt");
  for (size_t n = 0; n < bytes.size(); n += 7) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(daug::parse_torch_zip(cut.data(), cut.size(), "cut.pt"), daug::DataError) << "length " << n;
  }
}

TEST(TorchZip, CorruptedStorageFailsItsCrc) {
  auto bytes = read_bytes(kDir + "misc.pt");
  const PklSpan pkl = find_pkl(bytes);
  // The last storage record ends just before the central directory; flip a byte in data.pkl without fixing the CRC.
  bytes[pkl.data + pkl.size / 2] ^= 0x5a;
  daug::testing::expect_error_contains([&] { daug::parse_torch_zip(bytes.data(), bytes.size(), "misc.pt"); },
                                       {"misc.pt", "data.pkl", "CRC-32"});
}

// Each byte of data.pkl changed to a few values (CRC kept valid): the parser must either succeed or throw a
// DataError; nothing else (no crash, no other exception type, no out-of-range read under the sanitizers).
TEST(TorchZip, MutatedPickleParsesOrThrowsDataError) {
  const auto bytes = read_bytes(kDir + "misc.pt");
  const PklSpan pkl = find_pkl(bytes);
  int errors = 0, parsed = 0;
  for (size_t k = 0; k < pkl.size; ++k) {
    for (uint8_t delta : {uint8_t{1}, uint8_t{0x80}, uint8_t{0xff}}) {
      auto b = bytes;
      b[pkl.data + k] = static_cast<uint8_t>(b[pkl.data + k] + delta);
      fix_crc(b, pkl);
      try {
        daug::parse_torch_zip(b.data(), b.size(), "m.pt");
        ++parsed;
      } catch (const daug::DataError& e) {
        EXPECT_NE(std::string(e.what()).find("m.pt"), std::string::npos) << e.what();
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(parsed, 0);
}

TEST(TorchZip, AViewOutsideItsStorageIsRefused) {
  auto bytes = read_bytes(kDir + "misc.pt");
  const PklSpan pkl = find_pkl(bytes);
  // 'module.fp32' is a view of size (4, 6): BININT1 4, BININT1 6, TUPLE2. Make it (5, 6): 30 elements of 24.
  const uint8_t pattern[] = {'K', 4, 'K', 6, 0x86};
  auto* begin = &bytes[pkl.data];
  auto* at = std::search(begin, begin + pkl.size, std::begin(pattern), std::end(pattern));
  ASSERT_NE(at, begin + pkl.size);
  at[1] = 5;
  fix_crc(bytes, pkl);
  daug::testing::expect_error_contains([&] { daug::parse_torch_zip(bytes.data(), bytes.size(), "misc.pt"); },
                                       {"misc.pt", "data.pkl byte", "reaches element 29", "its storage holds 24"});
}

}  // namespace
