// daug/batch_part.h: the per-item draws of a batch split into parts are the unsplit batch's, and outside a part
// (or when the part is the whole batch) the functions are at::randn_like / at::randint exactly.
#include <daug/batch_part.h>
#include <daug/error.h>

#include <ATen/ATen.h>

#include <gtest/gtest.h>

#include <optional>

using namespace daug;

namespace {
// Draws t then noise for a part of `rows` items, as the diffusion trainers do.
std::pair<at::Tensor, at::Tensor> draw(int64_t rows, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor t = randint_part(0, 1000, rows, at::TensorOptions().dtype(at::kLong));
  at::Tensor noise = randn_like_part(at::zeros({rows, 2, 3}));
  return {t, noise};
}
}  // namespace

TEST(BatchPart, PartsDrawTheirRowsOfTheWholeBatchsDraw) {
  const int64_t total = 7;
  auto [t_all, noise_all] = draw(total, 5);  // no part set: the whole batch
  for (const std::vector<int64_t>& sizes : std::vector<std::vector<int64_t>>{{7}, {4, 3}, {2, 2, 2, 1}, {1, 6}}) {
    std::vector<at::Tensor> ts, noises;
    int64_t offset = 0;
    for (int64_t n : sizes) {
      BatchPartScope scope({offset, total});
      EXPECT_EQ(current_batch_part().offset, offset);
      auto [t, noise] = draw(n, 5);  // every part starts from the step's seed
      ts.push_back(t);
      noises.push_back(noise);
      offset += n;
    }
    EXPECT_TRUE(at::cat(ts).equal(t_all));
    EXPECT_TRUE(at::cat(noises).equal(noise_all));
  }
  EXPECT_EQ(current_batch_part().total, 0);  // the scopes restored "no part"
}

TEST(BatchPart, OutsideAPartOrForTheWholeBatchTheyAreTheAtenDraws) {
  at::manual_seed(3);
  const at::Tensor t = at::randint(0, 50, {5}, at::TensorOptions().dtype(at::kLong));
  const at::Tensor noise = at::randn_like(at::zeros({5, 4}));
  const at::Tensor after = at::randn({2});
  for (bool scoped : {false, true}) {
    std::optional<BatchPartScope> scope;
    if (scoped) scope.emplace(BatchPart{0, 5});
    at::manual_seed(3);
    EXPECT_TRUE(randint_part(0, 50, 5, at::TensorOptions().dtype(at::kLong)).equal(t)) << scoped;
    EXPECT_TRUE(randn_like_part(at::zeros({5, 4})).equal(noise)) << scoped;
    EXPECT_TRUE(at::randn({2}).equal(after)) << scoped;  // and the generator is left where ATen leaves it
  }
}

TEST(BatchPart, APartThatDoesNotFitIsAnError) {
  BatchPartScope scope({4, 5});
  EXPECT_THROW(randint_part(0, 10, 2, at::TensorOptions().dtype(at::kLong)), Error);
  EXPECT_THROW(randn_like_part(at::zeros({3})), Error);
  EXPECT_THROW(BatchPartScope({5, 5}), Error);
}
