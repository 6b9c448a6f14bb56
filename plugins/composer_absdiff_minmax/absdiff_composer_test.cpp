// composer_absdiff_minmax on hand-made tensors.
#include "absdiff_composer.h"

#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

using daug::plugins::AbsdiffComposer;
using daug::plugins::AbsdiffComposerOptions;
using daug::testing::expect_error_contains;
using daug::testing::max_abs_diff;

namespace {
at::Tensor t2x2(std::vector<float> v) { return at::tensor(v).view({1, 1, 2, 2}); }
}  // namespace

TEST(AbsdiffComposer, MinMaxThenAbsoluteDifferenceByHand) {
  AbsdiffComposer c{AbsdiffComposerOptions{}};
  // x = [[0, 2], [4, 8]] → minmax [[0, .25], [.5, 1]]; x̂ = [[1, 1], [3, 5]] → [[0, 0], [.5, 1]]
  at::Tensor heat = c.compose(t2x2({0, 2, 4, 8}), {t2x2({1, 1, 3, 5})});
  ASSERT_EQ(heat.sizes(), (at::IntArrayRef{1, 1, 2, 2}));
  EXPECT_LT(max_abs_diff(heat, t2x2({0, 0.25f, 0, 0})), 1e-7);
  // Min-max makes the map invariant to affine intensity changes of either input.
  EXPECT_LT(max_abs_diff(c.compose(t2x2({0, 2, 4, 8}) * 3 + 1, {t2x2({1, 1, 3, 5}) * 0.5 - 2}), heat), 1e-6);
}

TEST(AbsdiffComposer, UsesChannelZeroPerImageAndConstantImagesGiveZero) {
  AbsdiffComposer c{AbsdiffComposerOptions{}};
  at::Tensor x = at::zeros({2, 2, 2, 2}), y = at::zeros({2, 2, 2, 2});
  x[0][0] = at::tensor({0.f, 1.f, 2.f, 3.f}).view({2, 2});
  y[0][0] = at::tensor({3.f, 2.f, 1.f, 0.f}).view({2, 2});
  x[0][1].fill_(100);  // channel 1 is ignored
  x[1][0].fill_(5);    // constant image: minmax = 0
  y[1][0] = at::tensor({0.f, 0.f, 0.f, 1.f}).view({2, 2});
  at::Tensor heat = c.compose(x, {y});
  ASSERT_EQ(heat.sizes(), (at::IntArrayRef{2, 1, 2, 2}));
  EXPECT_LT(max_abs_diff(heat[0][0], at::tensor({1.f, 1.f / 3, 1.f / 3, 1.f}).view({2, 2})), 1e-6);
  EXPECT_LT(max_abs_diff(heat[1][0], at::tensor({0.f, 0.f, 0.f, 1.f}).view({2, 2})), 1e-7);
}

TEST(AbsdiffComposer, SumModeIsTheBratsChannelSum) {
  AbsdiffComposerOptions o;
  o.channels = "sum";
  AbsdiffComposer c{o};
  at::Tensor x = at::tensor({1.f, 2.f, 3.f, 4.f, 0.f, 0.f, 0.f, 1.f}).view({1, 2, 2, 2});
  at::Tensor y = at::tensor({1.f, 0.f, 3.f, 5.f, 1.f, 0.f, 2.f, 1.f}).view({1, 2, 2, 2});
  EXPECT_LT(max_abs_diff(c.compose(x, {y}), t2x2({1, 2, 2, 1})), 1e-7);
}

TEST(AbsdiffComposer, MismatchesAreErrors) {
  AbsdiffComposer c{AbsdiffComposerOptions{}};
  expect_error_contains([&] { c.compose(at::zeros({1, 1, 4, 4}), {at::zeros({1, 1, 2, 2})}); },
                        {"[1, 1, 4, 4]", "[1, 1, 2, 2]"});
  expect_error_contains([&] { c.compose(at::zeros({1, 1, 4, 4}), {}); }, {"exactly one map", "0"});
  // channel counts may differ (channel 0 of each is used) except in sum mode
  EXPECT_EQ(c.compose(at::rand({2, 3, 4, 4}), {at::rand({2, 1, 4, 4})}).sizes(), (at::IntArrayRef{2, 1, 4, 4}));
  AbsdiffComposerOptions so;
  so.channels = "sum";
  expect_error_contains([&] { AbsdiffComposer{so}.compose(at::rand({2, 3, 4, 4}), {at::rand({2, 1, 4, 4})}); },
                        {"sum", "3 channels"});
  at::Tensor bad = at::zeros({1, 1, 2, 2});
  bad[0][0][0][0] = NAN;
  EXPECT_THROW(c.compose(bad, {at::zeros({1, 1, 2, 2})}), daug::DataError);
  AbsdiffComposerOptions o;
  o.channels = "last";
  EXPECT_THROW(AbsdiffComposer{o}, daug::ConfigError);
}
