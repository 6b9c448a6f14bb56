// The structural pickle check that runs before LibTorch's unpickler (pickle_check.h).
#include "pickle_check.h"

#include <daug/error.h>

#include <test_support.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace daug::plugins::clip {
namespace {

using daug::testing::expect_error_contains;

// A pickle from a string literal (which may hold NUL bytes).
template <size_t N>
void check(const char (&bytes)[N]) {
  check_pickle(bytes, N - 1, "t.pkl");
}

// Files written by Python PyTorch 1.13 (torch.save of plain / OrderedDict-with-_metadata / nested state dicts, and
// torch.jit.save of a scripted module; fuzz/tools/make_seeds.py) pass: the check accepts what real writers produce.
TEST(PickleCheck, AcceptsTorchSaveAndTorchScriptFilesWrittenByPyTorch) {
  const auto dir = std::filesystem::path(DAUG_SOURCE_DIR) / "fuzz" / "corpus" / "clip_weights";
  int checked = 0;
  for (const char* name : {"state_dict.pt", "state_dict_metadata.pt", "nested.pt", "hf_names.bin", "torchscript.pt"}) {
    EXPECT_NO_THROW(check_torch_zip((dir / name).string())) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

// Each of these crashed (SIGSEGV) or exhausted memory inside LibTorch 1.13's unpickler (fuzz/regressions/torch_pickle).
TEST(PickleCheck, RejectsStackUnderflowMarksAndMemoAbuseWithOffset) {
  expect_error_contains([] { check("\x80\x02R."); }, {"t.pkl", "byte 2", "opcode 0x52", "needs 2"});
  expect_error_contains([] { check("\x80\x02\x85."); }, {"byte 2", "opcode 0x85", "needs 1"});
  expect_error_contains([] { check("\x80\x02t."); }, {"byte 2", "needs a MARK"});
  expect_error_contains([] { check("\x80\x02Nr\xff\xff\xff\xff."); },
                        {"byte 3", "memo id 4294967295 skips ids", "next free one is 0"});
  expect_error_contains([] { check("\x80\x02h\x00."); }, {"memo id 0 read before it was stored"});
  expect_error_contains([] { check("\x80\x02(NNNu."); }, {"odd number of values (3)"});
  expect_error_contains(
      [] {
        check(
            "\x80\x02X\xff\x00\x00\x00"
            "ab.");
      },
      {"opcode 0x58 needs 255 more bytes"});
  expect_error_contains([] { check("\x80\x02NN."); }, {"STOP with 2 values"});
  expect_error_contains([] { check("\x80\x03N."); }, {"protocol-2"});
  expect_error_contains([] { check("\x80\x02N"); }, {"ends before its STOP"});
  expect_error_contains([] { check("\x80\x02\x8c\x01xN."); }, {"opcode 0x8c is not one"});
  // 2000 nested lists: LibTorch would destroy them recursively.
  const std::string deep = std::string("\x80\x02", 2) + std::string(2000, ']') + std::string(1999, 'a') + ".";
  expect_error_contains([&] { check_pickle(deep.data(), deep.size(), "t.pkl"); }, {"nested deeper than 1000"});
  EXPECT_NO_THROW(
      check("\x80\x02]q\x00(K\x01K\x02"
            "e0h\x00\x85."));  // ([1, 2], ) with memo
}

TEST(PickleCheck, NotAZipIsADataErrorNamingTheFile) {
  daug::testing::TempDir d;
  daug::testing::write_text(d / "x.pt", "PK\x03\x04 not really a zip");
  expect_error_contains([&] { check_torch_zip((d / "x.pt").string()); }, {"x.pt", "not a readable"});
}

}  // namespace
}  // namespace daug::plugins::clip
