// .npy: round trips for every dtype, byte-exact header against the NPY spec / numpy's writer, and errors.
#include <daug/data/npy.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace {

using daug::testing::expect_error_contains;
using daug::testing::TempDir;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(Npy, RoundTripEveryDtype) {
  TempDir d;
  std::vector<at::Tensor> cases = {
      at::randn({3, 4}),
      at::randn({2, 3, 5}, at::kDouble),
      at::randint(0, 256, {7}, at::kByte),
      at::randint(-1000000000000LL, 1000000000000LL, {2, 2}, at::kLong),
      at::randint(-100000, 100000, {4, 1, 2}, at::kInt),
      at::randint(0, 2, {3, 3}, at::kLong).to(at::kBool),
      at::scalar_tensor(3.5, at::kFloat),  // 0-d
      at::zeros({0, 3}),                   // empty
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto p = d / ("a" + std::to_string(i) + ".npy");
    daug::data::save_npy(p, cases[i]);
    at::Tensor back = daug::data::load_npy(p);
    EXPECT_EQ(back.scalar_type(), cases[i].scalar_type()) << i;
    EXPECT_EQ(back.sizes(), cases[i].sizes()) << i;
    EXPECT_TRUE(at::equal(back, cases[i])) << i;
    EXPECT_EQ(slurp(p).size() % 64, (static_cast<size_t>(cases[i].numel()) * cases[i].element_size()) % 64) << i;
  }
  // non-contiguous input is written in logical C order
  at::Tensor t = at::arange(6, at::kFloat).reshape({2, 3}).t();
  daug::data::save_npy(d / "t.npy", t);
  EXPECT_TRUE(at::equal(daug::data::load_npy(d / "t.npy"), t.contiguous()));
}

TEST(Npy, HeaderIsByteExactWithNumpy) {
  // numpy.save("a.npy", numpy.arange(6, dtype="<f4").reshape(2, 3)) writes (numpy >= 1.23):
  //   "\x93NUMPY" 01 00, header length 0x0076 (little-endian), then the dict, 21 - len("2") = 20 growth spaces,
  //   padding so that 6 + 2 + 2 + 118 = 128 is a multiple of 64, and '\n'.
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  ASSERT_EQ(dict.size(), 59u);
  std::string expect = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict + std::string(20, ' ') +
                       std::string(128 - 10 - 59 - 20 - 1, ' ') + "\n";
  ASSERT_EQ(expect.size(), 128u);
  const float values[6] = {0, 1, 2, 3, 4, 5};
  expect.append(reinterpret_cast<const char*>(values), sizeof(values));

  TempDir d;
  daug::data::save_npy(d / "a.npy", at::arange(6, at::kFloat).reshape({2, 3}));
  EXPECT_EQ(slurp(d / "a.npy"), expect);

  // 1-d uint8 and bool: shape "(3,)", descr "|u1" / "|b1", 21 - 1 growth spaces, total header 128 again.
  const std::string dict_u1 = "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }";
  std::string expect_u1 = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict_u1 + std::string(20, ' ');
  expect_u1 += std::string(128 - 1 - expect_u1.size(), ' ') + "\n" + std::string("\x07\x08\x09", 3);
  daug::data::save_npy(d / "u.npy", at::tensor({7, 8, 9}, at::kByte));
  EXPECT_EQ(slurp(d / "u.npy"), expect_u1);

  // 0-d: shape "()", no growth padding: 10 + 57 + 1 = 68 → padded to 128.
  const std::string dict0 = "{'descr': '<f8', 'fortran_order': False, 'shape': (), }";
  std::string expect0 = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict0;
  expect0 += std::string(128 - 1 - expect0.size(), ' ') + "\n";
  const double v = 2.5;
  expect0.append(reinterpret_cast<const char*>(&v), 8);
  daug::data::save_npy(d / "s.npy", at::scalar_tensor(2.5, at::kDouble));
  EXPECT_EQ(slurp(d / "s.npy"), expect0);
}

std::string npy_bytes(int major, const std::string& dict, const std::string& payload) {
  std::string header = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  const size_t n = header.size();
  if (major == 1) {
    out += static_cast<char>(n & 0xff);
    out += static_cast<char>(n >> 8);
  } else {
    for (int k = 0; k < 4; ++k) out += static_cast<char>((n >> (8 * k)) & 0xff);
  }
  return out + header + payload;
}

TEST(Npy, ReadsVersions2And3AndOlderPadding) {
  TempDir d;
  const int32_t vals[3] = {-1, 0, 7};
  std::string payload(reinterpret_cast<const char*>(vals), sizeof(vals));
  for (int major : {1, 2, 3}) {
    auto p = d / ("v" + std::to_string(major) + ".npy");
    daug::testing::write_text(p, npy_bytes(major, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", payload));
    at::Tensor t = daug::data::load_npy(p);
    EXPECT_EQ(t.scalar_type(), at::kInt);
    EXPECT_TRUE(at::equal(t, at::tensor({-1, 0, 7}, at::kInt))) << major;
  }
  // key order and quoting need not match numpy's own writer
  daug::testing::write_text(d / "o.npy", npy_bytes(1, "{\"shape\": (1, 3), \"fortran_order\": False, \"descr\": \"<i4\"}",
                                                   payload));
  EXPECT_EQ(daug::data::load_npy(d / "o.npy").sizes(), (at::IntArrayRef{1, 3}));
}

TEST(Npy, Errors) {
  TempDir d;
  const float f[2] = {1, 2};
  std::string payload(reinterpret_cast<const char*>(f), sizeof(f));

  daug::testing::write_text(d / "magic.npy", "PK\x03\x04 this is a zip");
  expect_error_contains([&] { daug::data::load_npy(d / "magic.npy"); }, {"magic.npy", "not a .npy file", "50 4b 03 04"});

  daug::testing::write_text(d / "dtype.npy", npy_bytes(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
                                                       std::string(16, '\0')));
  expect_error_contains([&] { daug::data::load_npy(d / "dtype.npy"); }, {"dtype.npy", "unsupported dtype '<c8'", "<f4"});

  daug::testing::write_text(d / "be.npy", npy_bytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
                                                    payload));
  expect_error_contains([&] { daug::data::load_npy(d / "be.npy"); }, {"be.npy", "big-endian", ">f4"});

  daug::testing::write_text(d / "fortran.npy", npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }",
                                                         payload));
  expect_error_contains([&] { daug::data::load_npy(d / "fortran.npy"); }, {"fortran.npy", "Fortran"});

  daug::testing::write_text(d / "short.npy", npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                                                       payload));
  expect_error_contains([&] { daug::data::load_npy(d / "short.npy"); },
                        {"short.npy", "truncated", "needs 12 data bytes", "has 8"});

  std::string whole = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", payload);
  daug::testing::write_text(d / "cut_header.npy", whole.substr(0, 40));
  expect_error_contains([&] { daug::data::load_npy(d / "cut_header.npy"); }, {"cut_header.npy", "truncated .npy header"});

  daug::testing::write_text(d / "version.npy", std::string("\x93NUMPY\x04\x00\x10\x00", 10) + std::string(16, ' '));
  expect_error_contains([&] { daug::data::load_npy(d / "version.npy"); }, {"version 4.0"});

  daug::testing::write_text(d / "garbled.npy", npy_bytes(1, "{'descr': '<f4', 'shape': [2], }", payload));
  expect_error_contains([&] { daug::data::load_npy(d / "garbled.npy"); }, {"garbled.npy", "malformed .npy header"});

  // A shape whose byte count wraps around 2^64 to the (empty) payload size (fuzz/regressions/npy).
  daug::testing::write_text(d / "wrap.npy", npy_bytes(1,
                                                      "{'descr': '<f4', 'fortran_order': False, "
                                                      "'shape': (4294967296, 4294967296), }",
                                                      ""));
  expect_error_contains([&] { daug::data::load_npy(d / "wrap.npy"); },
                        {"wrap.npy", "(4294967296, 4294967296)", "more elements than fit"});

  expect_error_contains([&] { daug::data::load_npy(d / "missing.npy"); }, {"missing.npy", "does not exist"});
  EXPECT_THROW(daug::data::load_npy(d / "short.npy"), daug::DataError);

  expect_error_contains([&] { daug::data::save_npy(d / "h.npy", at::zeros({2}, at::kBFloat16)); }, {"unsupported dtype"});
}

TEST(Npy, InfoReadsOnlyTheHeaderAndAgreesWithLoad) {
  TempDir d;
  const int32_t vals[6] = {-1, 0, 7, 1, 2, 3};
  const std::string payload(reinterpret_cast<const char*>(vals), sizeof(vals));
  for (int major : {1, 2, 3}) {
    auto p = d / ("v" + std::to_string(major) + ".npy");
    daug::testing::write_text(p,
                              npy_bytes(major, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", payload));
    const auto info = daug::data::read_npy_info(p);
    EXPECT_EQ(info.shape, (std::vector<int64_t>{2, 3})) << major;
    EXPECT_EQ(info.dtype, at::kInt) << major;
  }
  // Every cut of a valid file, at any byte, and one extra byte, fail in both readers with the same message.
  const std::string whole = npy_bytes(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", payload);
  std::vector<std::string> variants;
  for (size_t n = 0; n < whole.size(); n += 7) variants.push_back(whole.substr(0, n));
  variants.push_back(whole.substr(0, whole.size() - 1));
  variants.push_back(whole + "x");
  variants.push_back(npy_bytes(2, "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", payload));
  for (size_t k = 0; k < variants.size(); ++k) {
    const auto p = d / ("bad" + std::to_string(k) + ".npy");
    daug::testing::write_text(p, variants[k]);
    std::string from_info, from_load;
    try {
      daug::data::read_npy_info(p);
    } catch (const daug::DataError& e) {
      from_info = e.what();
    }
    try {
      daug::data::load_npy(p);
    } catch (const daug::DataError& e) {
      from_load = e.what();
    }
    EXPECT_FALSE(from_info.empty()) << "variant " << k << " (" << variants[k].size() << " bytes) passed read_npy_info";
    EXPECT_EQ(from_info, from_load) << "variant " << k;
  }
  expect_error_contains([&] { daug::data::read_npy_info(d / "nope.npy"); }, {"nope.npy", "does not exist"});
}

}  // namespace

// float16 ('<f2', the compact retrieval-index embeddings): IEEE 754 binary16 bit patterns written by hand —
// 0x3C00 = 1.0, 0xC000 = -2.0, 0x3555 = 0.333251953125 (the nearest half to 1/3), 0x7BFF = 65504 (the largest).
TEST(Npy, Float16ReadsIeeeHalfBitPatternsAndRoundTrips) {
  TempDir d;
  const unsigned char halves[8] = {0x00, 0x3C, 0x00, 0xC0, 0x55, 0x35, 0xFF, 0x7B};
  daug::testing::write_text(d / "h.npy", npy_bytes(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
                                                   std::string(reinterpret_cast<const char*>(halves), 8)));
  const at::Tensor t = daug::data::load_npy(d / "h.npy");
  ASSERT_EQ(t.scalar_type(), at::kHalf);
  const at::Tensor f = t.to(at::kFloat);
  EXPECT_EQ(f[0].item<float>(), 1.0f);
  EXPECT_EQ(f[1].item<float>(), -2.0f);
  EXPECT_EQ(f[2].item<float>(), 0.333251953125f);
  EXPECT_EQ(f[3].item<float>(), 65504.0f);
  daug::data::save_npy(d / "h2.npy", t);
  std::ifstream in(d / "h2.npy", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(bytes.size() - 8), std::string(reinterpret_cast<const char*>(halves), 8));
  EXPECT_EQ(daug::data::read_npy_info(d / "h2.npy").dtype, at::kHalf);
}
