#include <daug/checkpoint.h>
#include <daug/error.h>

#include <ATen/ATen.h>

#include "test_support.h"

#include <fstream>

using daug::testing::expect_error_contains;
using daug::testing::TempDir;

TEST(Safetensors, RoundTripsDtypesShapesAndMetadata) {
  TempDir d;
  daug::NamedTensors t{{"a", at::arange(6, at::kFloat).reshape({2, 3})},
                       {"b", at::arange(4, at::kLong)},
                       {"c", at::ones({2}, at::kHalf)},
                       {"s", at::scalar_tensor(3.5, at::kDouble)}};
  daug::save_safetensors(d / "x.safetensors", t, {{"format", "pt"}});
  auto back = daug::load_safetensors(d / "x.safetensors");
  ASSERT_EQ(back.tensors.size(), 4u);
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(back.tensors[i].first, t[i].first);
    EXPECT_TRUE(at::equal(back.tensors[i].second, t[i].second)) << t[i].first;
    EXPECT_EQ(back.tensors[i].second.scalar_type(), t[i].second.scalar_type());
  }
  EXPECT_EQ(back.metadata.at("format"), "pt");
  EXPECT_FALSE(std::filesystem::exists(d / "x.safetensors.tmp"));
}

TEST(Safetensors, HeaderLayoutFollowsTheSpec) {
  TempDir d;
  daug::save_safetensors(d / "x.safetensors", {{"w", at::tensor({1.0f, 2.0f})}});
  std::ifstream f(d / "x.safetensors", std::ios::binary);
  unsigned char le[8];
  f.read(reinterpret_cast<char*>(le), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(le[i]) << (8 * i);
  std::string h(n, ' ');
  f.read(h.data(), n);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_NE(h.find("\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"), std::string::npos) << h;
  float v[2];
  f.read(reinterpret_cast<char*>(v), 8);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], 2.0f);
}

TEST(Safetensors, TruncatedAndCorruptFilesGiveClearErrors) {
  TempDir d;
  daug::save_safetensors(d / "x.safetensors", {{"weight", at::ones({16, 16})}});
  auto size = std::filesystem::file_size(d / "x.safetensors");
  std::filesystem::resize_file(d / "x.safetensors", size - 100);
  expect_error_contains([&] { daug::load_safetensors(d / "x.safetensors"); },
                        {"x.safetensors", "tensor 'weight'", "truncated"});
  daug::testing::write_text(d / "y.safetensors", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}");
  expect_error_contains([&] { daug::load_safetensors(d / "y.safetensors"); }, {"y.safetensors", "header length"});
  daug::testing::write_text(d / "z.safetensors", "abc");
  expect_error_contains([&] { daug::load_safetensors(d / "z.safetensors"); }, {"z.safetensors", "truncated"});
  expect_error_contains([&] { daug::load_safetensors(d / "none.safetensors"); }, {"none.safetensors", "cannot open"});
  // 2^62 float32 elements: the byte count wraps around 2^64 to the empty span (fuzz/regressions/safetensors).
  const std::string h = R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})";
  std::string len(8, '\0');
  for (size_t i = 0; i < 8; ++i) len[i] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
  daug::testing::write_text(d / "wrap.safetensors", len + h);
  expect_error_contains([&] { daug::load_safetensors(d / "wrap.safetensors"); },
                        {"wrap.safetensors", "tensor 'w'", "more elements than fit"});
}

TEST(Safetensors, CopyStateCheckedNamesKeyAndShapes) {
  at::Tensor w = at::zeros({2, 3});
  daug::NamedTensors dst{{"w", w}};
  expect_error_contains([&] { daug::copy_state_checked(dst, {{"w", at::ones({3, 2})}}, "ckpt.safetensors"); },
                        {"ckpt.safetensors: tensor 'w' has shape [3, 2], but the configured model expects [2, 3]"});
  expect_error_contains([&] { daug::copy_state_checked(dst, {}, "ckpt"); }, {"missing tensor(s)", "w"});
  expect_error_contains([&] { daug::copy_state_checked(dst, {{"w", at::ones({2, 3})}, {"extra", at::ones({1})}}, "ckpt"); },
                        {"unexpected tensor(s)", "extra"});
  EXPECT_EQ(w.sum().item<double>(), 0.0) << "nothing copied on error";
  daug::copy_state_checked(dst, {{"w", at::ones({2, 3}, at::kDouble)}}, "ckpt");
  EXPECT_EQ(w.sum().item<double>(), 6.0);
}

// Writes a safetensors file by hand: `header` (JSON) and `data_bytes` zero bytes of data.
static void write_raw_safetensors(const std::filesystem::path& p, const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff);
  out += header + std::string(data_bytes, '\0');
  daug::testing::write_text(p, out);
}

// The format (and the reference reader) requires the tensors to tile the data section exactly.
TEST(Safetensors, OverlapsGapsAndTrailingBytesAreRejected) {
  TempDir d;
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  write_raw_safetensors(d / "ok.safetensors", "{" + a + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                        12);
  EXPECT_EQ(daug::load_safetensors(d / "ok.safetensors").tensors.size(), 2u);
  write_raw_safetensors(d / "overlap.safetensors",
                        "{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
  expect_error_contains([&] { daug::load_safetensors(d / "overlap.safetensors"); },
                        {"overlap.safetensors", "overlaps tensor", "[0, 8)", "must not share bytes"});
  write_raw_safetensors(d / "partial.safetensors",
                        "{" + a + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8);
  expect_error_contains([&] { daug::load_safetensors(d / "partial.safetensors"); },
                        {"partial.safetensors", "tensor 'b' [4, 8) overlaps tensor 'a' [0, 8)"});
  write_raw_safetensors(d / "gap.safetensors", "{" + a + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
                        16);
  expect_error_contains([&] { daug::load_safetensors(d / "gap.safetensors"); },
                        {"gap.safetensors", "4 unused bytes [8, 12) before tensor 'b'"});
  write_raw_safetensors(d / "trailing.safetensors", "{" + a + "}", 12);
  expect_error_contains([&] { daug::load_safetensors(d / "trailing.safetensors"); },
                        {"trailing.safetensors", "4 trailing bytes"});
  write_raw_safetensors(d / "oob.safetensors", "{" + a + "}", 4);
  expect_error_contains([&] { daug::load_safetensors(d / "oob.safetensors"); },
                        {"oob.safetensors", "tensor 'a' ends at byte 8", "holds only 4"});
}
