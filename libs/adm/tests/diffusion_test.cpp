// Tests of the guided-diffusion math against closed forms, guided-diffusion's definitions and invariants.
#include <daug/adm/diffusion.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

using daug::adm::GaussianDiffusion;
using daug::adm::VarianceType;
using daug::testing::expect_error_contains;
using daug::testing::max_abs_diff;

namespace {

std::vector<int64_t> range_step(int64_t a, int64_t b, int64_t s) {
  std::vector<int64_t> r;
  for (int64_t i = a; i < b; i += s) r.push_back(i);
  return r;
}

}  // namespace

TEST(Schedule, LinearMatchesClosedForm) {
  auto b = daug::adm::beta_schedule("linear", 1000);
  ASSERT_EQ(b.size(), 1000u);
  EXPECT_DOUBLE_EQ(b[0], 1e-4);
  EXPECT_DOUBLE_EQ(b[999], 0.02);
  for (int i : {1, 250, 500, 998}) EXPECT_NEAR(b[i], 1e-4 + i * (0.02 - 1e-4) / 999.0, 1e-15);
  // T = 250 scales the endpoints by 1000/T.
  auto b250 = daug::adm::beta_schedule("linear", 250);
  EXPECT_DOUBLE_EQ(b250[0], 4e-4);
  EXPECT_DOUBLE_EQ(b250[249], 0.08);
}

TEST(Schedule, CosineMatchesClosedForm) {
  const int T = 1000;
  auto b = daug::adm::beta_schedule("cosine", T);
  auto abar = [](double u) { return std::pow(std::cos((u + 0.008) / 1.008 * M_PI / 2), 2); };
  double prod = 1.0;
  for (int i = 0; i < T; ++i) {
    EXPECT_NEAR(b[i], std::min(1 - abar((i + 1.0) / T) / abar(double(i) / T), 0.999), 1e-15);
    prod *= 1 - b[i];
    if (i == 499) EXPECT_NEAR(prod, abar(0.5) / abar(0.0), 1e-9);  // ᾱ telescopes while β < 0.999
  }
  EXPECT_DOUBLE_EQ(b[T - 1], 0.999);  // clipped at the end
}

TEST(Schedule, UnknownNameIsConfigError) {
  EXPECT_THROW(daug::adm::beta_schedule("quadratic", 1000), daug::ConfigError);
  expect_error_contains([] { daug::adm::beta_schedule("quadratic", 1000); }, {"linear", "cosine", "quadratic"});
}

TEST(Diffusion, ArraysMatchClosedForms) {
  auto betas = daug::adm::beta_schedule("linear", 1000);
  GaussianDiffusion d(betas, {}, VarianceType::learned_range);
  ASSERT_EQ(d.num_steps(), 1000);
  // (SpacedDiffusion recomputes β from ᾱ, so the arrays agree with the closed forms to ~1e-13, not bitwise.)
  double ac = 1.0;
  for (int t = 0; t < 1000; ++t) {
    const double prev = ac;
    ac *= 1 - betas[t];
    EXPECT_NEAR(d.alphas_cumprod()[t], ac, 1e-11);
    EXPECT_NEAR(d.alphas_cumprod_prev()[t], prev, 1e-11);
    const double post = betas[t] * (1 - prev) / (1 - ac);
    EXPECT_NEAR(d.posterior_variance()[t], post, 1e-11);
    EXPECT_NEAR(d.posterior_mean_coef1()[t], betas[t] * std::sqrt(prev) / (1 - ac), 1e-11);
    EXPECT_NEAR(d.posterior_mean_coef2()[t], (1 - prev) * std::sqrt(1 - betas[t]) / (1 - ac), 1e-11);
    if (t > 0) EXPECT_NEAR(d.posterior_log_variance_clipped()[t], std::log(post), 1e-11);
  }
  EXPECT_EQ(d.posterior_variance()[0], 0.0);
  EXPECT_DOUBLE_EQ(d.posterior_log_variance_clipped()[0], std::log(d.posterior_variance()[1]));
  EXPECT_DOUBLE_EQ(d.alphas_cumprod_next()[998], d.alphas_cumprod()[999]);
  EXPECT_EQ(d.alphas_cumprod_next()[999], 0.0);
  // REFERENCE §2.3: at t = 500, √ᾱ = 0.279 and √(1−ᾱ) = 0.960; ᾱ_498 = 0.0794, ᾱ_500 = 0.0778.
  EXPECT_NEAR(std::sqrt(d.alphas_cumprod()[500]), 0.279, 5e-4);
  EXPECT_NEAR(std::sqrt(1 - d.alphas_cumprod()[500]), 0.960, 5e-4);
  EXPECT_NEAR(d.alphas_cumprod()[498], 0.0794, 5e-4);
  EXPECT_NEAR(d.alphas_cumprod()[500], 0.0778, 5e-4);
}

TEST(Respacing, MatchesGuidedDiffusionLists) {
  using daug::adm::space_timesteps;
  EXPECT_EQ(space_timesteps(1000, "ddim25"),
            (std::vector<int64_t>{0,   40,  80,  120, 160, 200, 240, 280, 320, 360, 400, 440, 480,
                                  520, 560, 600, 640, 680, 720, 760, 800, 840, 880, 920, 960}));
  EXPECT_EQ(space_timesteps(1000, "ddim1000"), range_step(0, 1000, 1));
  EXPECT_EQ(space_timesteps(1000, "ddim100"), range_step(0, 1000, 10));
  EXPECT_EQ(space_timesteps(1000, ""), range_step(0, 1000, 1));
  EXPECT_EQ(space_timesteps(1000, "10,15,20"),
            (std::vector<int64_t>{0,   37,  74,  111, 148, 185, 222, 259, 296, 333, 334, 358, 381, 405, 429,
                                  453, 476, 500, 524, 547, 571, 595, 619, 642, 666, 667, 684, 702, 719, 737,
                                  754, 772, 789, 807, 824, 842, 859, 877, 894, 912, 929, 947, 964, 982, 999}));
  const std::vector<int64_t> s250 = {
      0,   4,   8,   12,  16,  20,  24,  28,  32,  36,  40,  44,  48,  52,  56,  60,  64,  68,  72,  76,  80,
      84,  88,  92,  96,  100, 104, 108, 112, 116, 120, 124, 128, 132, 136, 140, 144, 148, 152, 156, 160, 164,
      169, 173, 177, 181, 185, 189, 193, 197, 201, 205, 209, 213, 217, 221, 225, 229, 233, 237, 241, 245, 249,
      253, 257, 261, 265, 269, 273, 277, 281, 285, 289, 293, 297, 301, 305, 309, 313, 317, 321, 325, 329, 333,
      337, 341, 345, 349, 353, 357, 361, 365, 369, 373, 377, 381, 385, 389, 393, 397, 401, 405, 409, 413, 417,
      421, 425, 429, 433, 437, 441, 445, 449, 453, 457, 461, 465, 469, 473, 477, 481, 485, 489, 493, 497, 502,
      506, 510, 514, 518, 522, 526, 530, 534, 538, 542, 546, 550, 554, 558, 562, 566, 570, 574, 578, 582, 586,
      590, 594, 598, 602, 606, 610, 614, 618, 622, 626, 630, 634, 638, 642, 646, 650, 654, 658, 662, 666, 670,
      674, 678, 682, 686, 690, 694, 698, 702, 706, 710, 714, 718, 722, 726, 730, 734, 738, 742, 746, 750, 754,
      758, 762, 766, 770, 774, 778, 782, 786, 790, 794, 798, 802, 806, 810, 814, 818, 822, 826, 830, 835, 839,
      843, 847, 851, 855, 859, 863, 867, 871, 875, 879, 883, 887, 891, 895, 899, 903, 907, 911, 915, 919, 923,
      927, 931, 935, 939, 943, 947, 951, 955, 959, 963, 967, 971, 975, 979, 983, 987, 991, 995, 999};
  EXPECT_EQ(space_timesteps(1000, "250"), s250);
}

TEST(Respacing, UnsatisfiableSpecsAreConfigErrors) {
  using daug::adm::space_timesteps;
  expect_error_contains([] { space_timesteps(1000, "ddim300"); }, {"ddim300", "300", "integer stride"});
  expect_error_contains([] { space_timesteps(1000, "2000"); }, {"2000", "cannot divide"});
  expect_error_contains([] { space_timesteps(1000, "ddimx"); }, {"ddimx", "not an integer"});
  expect_error_contains([] { space_timesteps(1000, "10,,5"); }, {"10,,5"});
  EXPECT_THROW(space_timesteps(1000, "0"), daug::ConfigError);
}

TEST(Respacing, RespacedBetasReproduceAlphaBarAtKeptSteps) {
  auto betas = daug::adm::beta_schedule("linear", 1000);
  GaussianDiffusion full(betas, {}, VarianceType::learned_range);
  for (const char* spec : {"ddim25", "250", "10,15,20"}) {
    auto kept = daug::adm::space_timesteps(1000, spec);
    GaussianDiffusion sp(betas, kept, VarianceType::learned_range);
    ASSERT_EQ(sp.num_steps(), static_cast<int64_t>(kept.size()));
    EXPECT_EQ(sp.timestep_map(), kept);
    for (size_t j = 0; j < kept.size(); ++j) {
      EXPECT_NEAR(sp.alphas_cumprod()[j], full.alphas_cumprod()[kept[j]], 1e-12) << spec << " j=" << j;
      EXPECT_EQ(sp.index_of(kept[j]), static_cast<int64_t>(j));
    }
    // β'_j = 1 − ᾱ_{τ_j}/ᾱ_{τ_{j−1}}
    EXPECT_NEAR(sp.betas()[1], 1 - full.alphas_cumprod()[kept[1]] / full.alphas_cumprod()[kept[0]], 1e-15);
  }
  GaussianDiffusion sp(betas, daug::adm::space_timesteps(1000, "ddim100"), VarianceType::learned_range);
  EXPECT_EQ(sp.index_of(500), 50);
  EXPECT_EQ(sp.index_of(505), -1);
  // map_timesteps sends respaced indices to ORIGINAL timesteps.
  auto mapped = sp.map_timesteps(at::tensor(std::vector<int64_t>{0, 1, 50, 99}));
  EXPECT_EQ(mapped[2].item<int64_t>(), 500);
  EXPECT_EQ(mapped[3].item<int64_t>(), 990);
}

TEST(Diffusion, QSampleMeanAndVariance) {
  auto betas = daug::adm::beta_schedule("linear", 1000);
  GaussianDiffusion d(betas, {}, VarianceType::learned_range);
  at::manual_seed(7);
  const int64_t n = 200000;
  at::Tensor x0 = at::full({n, 1, 1, 1}, 0.7);
  at::Tensor t = at::full({n}, 300, at::kLong);
  at::Tensor xt = d.q_sample(x0, t, at::randn_like(x0));
  const double ac = d.alphas_cumprod()[300];
  // mean √ᾱ·x0, variance 1−ᾱ; standard errors: sqrt((1−ᾱ)/n) ≈ 0.002, var ≈ (1−ᾱ)·sqrt(2/n) ≈ 0.003.
  EXPECT_NEAR(xt.mean().item<double>(), std::sqrt(ac) * 0.7, 0.01);
  EXPECT_NEAR(xt.var().item<double>(), 1 - ac, 0.015);
}

namespace {
// A model whose ε output is a fixed function of nothing: DDIM inversion is then exact algebraically.
daug::adm::ModelFn constant_eps_model(double c, bool learned) {
  return [c, learned](const at::Tensor& x, const at::Tensor&) {
    at::Tensor eps = at::full_like(x, c);
    return learned ? at::cat({eps, at::zeros_like(x)}, 1) : eps;
  };
}
}  // namespace

TEST(Diffusion, DdimInversionIsExactForAConstantEpsModel) {
  auto betas = daug::adm::beta_schedule("linear", 1000);
  GaussianDiffusion d(betas, daug::adm::space_timesteps(1000, "ddim100"), VarianceType::learned_range);
  auto model = constant_eps_model(0.3, true);
  at::manual_seed(1);
  at::Tensor x0 = at::rand({2, 1, 8, 8}).to(at::kDouble);
  at::Tensor x = x0;
  for (int64_t j = 0; j < 50; ++j) x = d.ddim_reverse_sample(model, x, at::full({2}, j, at::kLong), false);
  for (int64_t j = 50; j >= 1; --j) x = d.ddim_sample(model, x, at::full({2}, j, at::kLong), false, nullptr, 0.0, {});
  EXPECT_LT(max_abs_diff(x, x0), 1e-9);
}

TEST(Diffusion, GuidedStepsApplyTheDocumentedFormulas) {
  auto betas = daug::adm::beta_schedule("linear", 1000);
  GaussianDiffusion d(betas, daug::adm::space_timesteps(1000, "ddim10"), VarianceType::learned_range);
  at::manual_seed(3);
  at::Tensor x = at::randn({2, 1, 4, 4}, at::kDouble);
  at::Tensor out = at::randn({2, 2, 4, 4}, at::kDouble).clamp(-1, 1);
  auto model = [&](const at::Tensor&, const at::Tensor&) { return out; };
  at::Tensor g = at::randn({2, 1, 4, 4}, at::kDouble);
  std::vector<int64_t> seen;
  daug::adm::GradFn grad = [&](const at::Tensor&, const at::Tensor& t) {
    for (int64_t i = 0; i < t.size(0); ++i) seen.push_back(t[i].item<int64_t>());
    return g;
  };
  daug::adm::GradFn zero = [&](const at::Tensor& xx, const at::Tensor&) { return at::zeros_like(xx); };
  at::Tensor t = at::full({2}, 5, at::kLong);  // respaced index 5 = original timestep 500
  // DDIM: ε' = ε − √(1−ᾱ_t)·g, then the η = 0 update.
  at::Tensor guided = d.ddim_sample(model, x, t, false, &grad, 0.0, {});
  ASSERT_EQ(seen, (std::vector<int64_t>{500, 500}));
  const double ab = d.alphas_cumprod()[5], abp = d.alphas_cumprod_prev()[5];
  at::Tensor eps = out.narrow(1, 0, 1) - std::sqrt(1 - ab) * g;
  at::Tensor x0 = (x - std::sqrt(1 - ab) * eps) / std::sqrt(ab);
  at::Tensor expect = std::sqrt(abp) * x0 + std::sqrt(1 - abp) * eps;
  EXPECT_LT(max_abs_diff(guided, expect), 1e-10);
  // Scale 0 (zero gradient) equals the unguided step, for DDIM and DDPM.
  EXPECT_LT(max_abs_diff(d.ddim_sample(model, x, t, true, &zero, 0.0, {}),
                         d.ddim_sample(model, x, t, true, nullptr, 0.0, {})), 1e-12);
  at::Tensor noise = at::randn_like(x);
  EXPECT_LT(max_abs_diff(d.p_sample(model, x, t, true, &zero, noise), d.p_sample(model, x, t, true, nullptr, noise)),
            1e-12);
  // DDPM: μ' = μ + Σ·g.
  auto pmv = d.p_mean_variance(model, x, t, true);
  at::Tensor ddpm = d.p_sample(model, x, t, true, &grad, noise);
  EXPECT_LT(max_abs_diff(ddpm, pmv.mean + pmv.variance * g + (0.5 * pmv.log_variance).exp() * noise), 1e-10);
  // LEARNED_RANGE: v = ±1 gives log β_t and the clipped log β̃_t.
  at::Tensor vt = d.p_mean_variance_from_output(at::cat({out.narrow(1, 0, 1), at::ones_like(x)}, 1), x, t, true)
                      .log_variance;
  EXPECT_NEAR(vt.max().item<double>(), std::log(d.betas()[5]), 1e-10);
  // At t = 0 no noise is added.
  at::Tensor t0 = at::zeros({2}, at::kLong);
  EXPECT_LT(max_abs_diff(d.p_sample(model, x, t0, true, nullptr, noise), d.p_mean_variance(model, x, t0, true).mean),
            1e-12);
}

TEST(Diffusion, WrongModelOutputChannelsNamesShapes) {
  auto betas = daug::adm::beta_schedule("linear", 100);
  GaussianDiffusion d(betas, {}, VarianceType::learned_range);
  at::Tensor x = at::zeros({1, 1, 4, 4});
  auto bad = [](const at::Tensor& xx, const at::Tensor&) { return xx; };  // C instead of 2C
  expect_error_contains([&] { d.p_mean_variance(bad, x, at::zeros({1}, at::kLong), true); },
                        {"[1, 1, 4, 4]", "2 output channels"});
}

TEST(Losses, NormalKlAndDecoderNllClosedForms) {
  // KL(N(0,1) || N(1, e^2)) = 0.5·(−1 + 2 − 0 + e^{−2} + e^{−2}) = 0.5·(1 + 2e^{−2}).
  at::Tensor kl = daug::adm::normal_kl(at::zeros({1}, at::kDouble), at::zeros({1}, at::kDouble),
                                       at::ones({1}, at::kDouble), at::full({1}, 2.0, at::kDouble));
  EXPECT_NEAR(kl.item<double>(), 0.5 * (1 + 2 * std::exp(-2.0)), 1e-12);
  // A very narrow decoder centred on the bin gives log p ≈ 0; the edge bins integrate the tail.
  at::Tensor x = at::tensor({0.0, 1.0, -1.0}, at::kDouble);
  at::Tensor ll = daug::adm::discretized_gaussian_log_likelihood(x, x, at::full({3}, std::log(1e-4), at::kDouble));
  EXPECT_LT(ll.abs().max().item<double>(), 1e-9);
  // Wide decoder (σ = 1) at 0: log(Φ(1/255) − Φ(−1/255)) ≈ log(2/255·φ(0)).
  at::Tensor ll1 = daug::adm::discretized_gaussian_log_likelihood(at::zeros({1}, at::kDouble),
                                                                   at::zeros({1}, at::kDouble),
                                                                   at::zeros({1}, at::kDouble));
  EXPECT_NEAR(ll1.item<double>(), std::log(2.0 / 255.0 / std::sqrt(2 * M_PI)), 1e-4);
}

TEST(Losses, TrainingLossIsMsePlusVb) {
  auto betas = daug::adm::beta_schedule("linear", 1000);
  GaussianDiffusion d(betas, {}, VarianceType::learned_range);
  at::manual_seed(5);
  at::Tensor x0 = at::rand({3, 1, 4, 4}, at::kDouble) * 2 - 1;
  at::Tensor noise = at::randn_like(x0);
  at::Tensor t = at::tensor(std::vector<int64_t>{0, 10, 999});
  // The perfect ε predictor with v chosen so Σ = posterior variance (v = −1): mse = 0 and vb = KL of equal
  // distributions = 0 for t > 0.
  auto model = [&](const at::Tensor& xt, const at::Tensor&) { return at::cat({noise, -at::ones_like(xt)}, 1); };
  auto r = d.training_losses(model, x0, t, noise);
  EXPECT_LT(r.mse.abs().max().item<double>(), 1e-20);
  EXPECT_NEAR(r.vb[1].item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(r.vb[2].item<double>(), 0.0, 1e-6);
  EXPECT_GT(r.vb[0].item<double>(), 0.0);  // decoder NLL in bits at t = 0
  EXPECT_LT(max_abs_diff(r.loss, r.mse + r.vb), 1e-15);
  // The VB term does not backpropagate into the ε half (frozen mean).
  at::Tensor out = at::cat({at::zeros_like(x0), at::zeros_like(x0)}, 1).set_requires_grad(true);
  auto model2 = [&](const at::Tensor&, const at::Tensor&) { return out; };
  auto r2 = d.training_losses(model2, x0, t, noise);
  r2.vb.sum().backward();
  EXPECT_EQ(out.grad().narrow(1, 0, 1).abs().max().item<double>(), 0.0);
  EXPECT_GT(out.grad().narrow(1, 1, 1).abs().max().item<double>(), 0.0);
}

TEST(Diffusion, DeviceTablesGiveTheValuesOfIndexThenCastAndCheckHostIndices) {
  // extract() casts each float64 table to x's dtype once (cached per device/dtype) and indexes that copy: the
  // values must be those of the former index-then-cast, bit for bit, on every call.
  const GaussianDiffusion d(daug::adm::beta_schedule("linear", 1000), daug::adm::space_timesteps(1000, "ddim10"),
                            VarianceType::learned_range);
  const at::Tensor t = at::tensor({9, 0, 4, 4}, at::kLong);
  for (auto dtype : {at::kFloat, at::kDouble, at::kBFloat16}) {
    const at::Tensor like = at::zeros({4, 1, 2, 2}, dtype);
    for (const auto* arr : {&d.alphas_cumprod(), &d.posterior_log_variance_clipped(), &d.posterior_mean_coef2()}) {
      const at::Tensor want = at::tensor(*arr, at::kDouble).index_select(0, t).to(dtype).view({4, 1, 1, 1});
      for (int call = 0; call < 2; ++call) {
        const at::Tensor got = d.extract(*arr, t, like);
        EXPECT_EQ(got.scalar_type(), dtype);
        EXPECT_TRUE(at::equal(got, want)) << "dtype " << dtype << " call " << call;
      }
    }
  }
  // A caller's own array (not one of the process's tables) works too, uncached.
  const std::vector<double> mine(10, 0.25);
  EXPECT_TRUE(at::equal(d.extract(mine, t, at::zeros({4, 3})), at::full({4, 1}, 0.25)));
  // Writing into a result must not change the cached table.
  at::Tensor got = d.extract(d.alphas_cumprod(), t, at::zeros({4}, at::kDouble));
  got.fill_(7.0);
  EXPECT_EQ(d.extract(d.alphas_cumprod(), at::tensor({0}, at::kLong), at::zeros({1}, at::kDouble)).item<double>(),
            d.alphas_cumprod()[0]);
  // The original timesteps of the indices, on the indices' device.
  EXPECT_TRUE(at::equal(d.map_timesteps(t), at::tensor({900, 0, 400, 400}, at::kLong)));
  // Host indices are range-checked on the host.
  expect_error_contains([&] { d.extract(d.betas(), at::tensor({3, 10}, at::kLong), at::zeros({2})); },
                        {"timestep index out of range [0, 9]"});
  expect_error_contains([&] { d.map_timesteps(at::tensor({-1}, at::kLong)); }, {"timestep index out of range [0, 9]"});
}
