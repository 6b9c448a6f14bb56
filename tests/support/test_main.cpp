// main() of every daug GoogleTest binary: one LibTorch intra-op thread (results do not depend on the machine's core
// count, and ctest's parallel test processes do not spin-wait on each other's OpenMP threads), then the tests.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  at::set_num_threads(1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
