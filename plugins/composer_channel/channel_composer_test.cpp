#include "channel_composer.h"

#include "clip_common.h"
#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

using daug::plugins::ChannelComposer;
using daug::testing::expect_error_contains;

TEST(ChannelComposer, PutsExactlyTheNormalisedHeatmapInChannel0) {
  at::set_num_threads(1);
  auto img = at::randn({2, 3, 4, 4});
  const auto img_copy = img.clone();
  // map values 0..15 → min-max → k/15 → floor(255·k/15)/255 = 17k/255 (exact), then (x − mean0)/std0
  auto map = at::arange(16, at::kFloat).view({1, 1, 4, 4}).repeat({2, 1, 1, 1});
  ChannelComposer comp({{0}, /*quantize=*/true});
  auto out = comp.compose(img, {map});
  auto expect = (at::arange(16, at::kFloat).view({4, 4}) * 17.0 / 255.0 - daug::clip::kClipMean[0]) /
                daug::clip::kClipStd[0];
  EXPECT_LT(daug::testing::max_abs_diff(out[0][0], expect), 1e-6);
  EXPECT_LT(daug::testing::max_abs_diff(out[1][0], expect), 1e-6);
  EXPECT_EQ(daug::testing::max_abs_diff(out.narrow(1, 1, 2), img.narrow(1, 1, 2)), 0.0);  // others untouched
  EXPECT_EQ(daug::testing::max_abs_diff(img, img_copy), 0.0);                             // input not modified
  EXPECT_EQ(comp.num_maps(), 1);
}

TEST(ChannelComposer, ByDefaultTakesTheMapsAsTheStagesQuantisedThem) {
  // The stages hand over maps already min-maxed and put on the 8-bit grid at the native size (released order);
  // re-normalising here would stretch a resized map whose peak fell below 1.
  auto img = at::zeros({1, 3, 2, 2});
  auto map = at::tensor({0.f, 59.f / 255, 9.f / 255, 12.f / 255}).view({1, 1, 2, 2});
  auto out = ChannelComposer({}).compose(img, {map});
  EXPECT_NEAR(out[0][0][0][1].item<double>(), (59.0 / 255 - daug::clip::kClipMean[0]) / daug::clip::kClipStd[0], 1e-6);
}

TEST(ChannelComposer, PaperChannel2UsesThatChannelsStats) {
  auto img = at::zeros({1, 3, 2, 2});
  auto map = at::tensor({0.f, 1.f, 1.f, 0.f}).view({1, 1, 2, 2});
  ChannelComposer comp({{2}, true});
  auto out = comp.compose(img, {map});
  EXPECT_NEAR(out[0][2][0][1].item<double>(), (1.0 - daug::clip::kClipMean[2]) / daug::clip::kClipStd[2], 1e-6);
  EXPECT_NEAR(out[0][2][0][0].item<double>(), (0.0 - daug::clip::kClipMean[2]) / daug::clip::kClipStd[2], 1e-6);
  EXPECT_EQ(out.narrow(1, 0, 2).abs().sum().item<double>(), 0.0);
}

TEST(ChannelComposer, BaselineAndSeveralMaps) {
  auto img = at::randn({1, 3, 2, 2});
  ChannelComposer none({{}, true});
  EXPECT_EQ(none.num_maps(), 0);
  EXPECT_EQ(daug::testing::max_abs_diff(none.compose(img, {}), img), 0.0);
  ChannelComposer two({{0, 1}, false});
  auto a = at::full({1, 1, 2, 2}, 0.25), b = at::full({1, 3, 2, 2}, 0.75);
  auto out = two.compose(img, {a, b});
  EXPECT_NEAR(out[0][0][1][1].item<double>(), (0.25 - daug::clip::kClipMean[0]) / daug::clip::kClipStd[0], 1e-6);
  EXPECT_NEAR(out[0][1][0][0].item<double>(), (0.75 - daug::clip::kClipMean[1]) / daug::clip::kClipStd[1], 1e-6);
  EXPECT_EQ(daug::testing::max_abs_diff(out[0][2], img[0][2]), 0.0);
}

TEST(ChannelComposer, BadInputsAreClearErrors) {
  ChannelComposer comp({});
  expect_error_contains([&] { comp.compose(at::zeros({1, 3, 4, 4}), {}); }, {"expects 1 heatmap(s), but got 0"});
  expect_error_contains([&] { comp.compose(at::zeros({1, 3, 4, 4}), {at::zeros({1, 1, 4, 5})}); },
                        {"heatmap 0 must be [N,c,H,W] = [1,c,4,4]", "[1, 1, 4, 5]"});
  expect_error_contains([&] { comp.compose(at::zeros({1, 1, 4, 4}), {at::zeros({1, 1, 4, 4})}); },
                        {"[N,3,H,W]"});
  expect_error_contains([&] { ChannelComposer({{0, 0}, true}); }, {"must not repeat"});
  expect_error_contains([&] { ChannelComposer({{3}, true}); }, {"[composer].channels element [3] must be in [0, 2]"});
}

TEST(ChannelComposer, ErrorsNameTheTableItIsBuiltFrom) {
  // The configs put this plugin in [clip_composer] (configs/clip/channel.toml), not [composer].
  daug::testing::TestContext ctx;
  ctx.set_table("clip_composer");
  expect_error_contains([&] { ChannelComposer::create({{2, 2}, true}, ctx); },
                        {"[clip_composer].channels must not repeat a channel, but 2 appears twice in [2, 2]"});
  expect_error_contains([&] { ChannelComposer::create({{0, 5}, true}, ctx); },
                        {"[clip_composer].channels element [5] must be in [0, 2], but got [0, 5]"});
  EXPECT_EQ(ChannelComposer::create({{2}, true}, ctx)->num_maps(), 1);
}
