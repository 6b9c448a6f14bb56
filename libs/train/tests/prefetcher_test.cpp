// The prefetching loader: batches equal to the synchronous path (byte for byte) for 0/1/2/4 workers, errors at the
// batch they belong to, clean shutdown mid-stream, single-threaded ATen in the workers, StepLoader over a Trainer.
#include <daug/train/prefetcher.h>
#include <daug/train/sampler.h>
#include <daug/train/trainer.h>

#include <daug/checkpoint.h>
#include <daug/data/image.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

using namespace daug;
using namespace daug::train;

namespace {

// The first n images of the embedded NIH sample, sorted by name.
std::vector<std::filesystem::path> nih_images(size_t n) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(DAUG_SOURCE_DIR) /
                                                           "examples/data/nih-cxr14-sample/images"))
    if (e.path().extension() == ".png") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  out.resize(std::min(n, out.size()));
  return out;
}

// Decode + AA-bicubic resize to 48² (real ATen work in the workers) and a second part: the index itself.
std::function<std::vector<at::Tensor>(int64_t)> image_item(const std::vector<std::filesystem::path>& files) {
  return [files](int64_t i) -> std::vector<at::Tensor> {
    at::Tensor x = data::load_gray(files.at(static_cast<size_t>(i)));
    return {data::resize(x, 48, 48, data::Filter::bicubic), at::full({1}, i, at::kLong)};
  };
}

// Batches of 1..5 items that revisit indices (as epochs do); batch k's content depends on k only.
std::vector<int64_t> batch_indices(int64_t k, int64_t n) {
  std::vector<int64_t> idx;
  for (int64_t j = 0; j <= k % 5; ++j) idx.push_back((k * 7 + j * 3) % n);
  return idx;
}

std::vector<LoadedBatch> drain(Prefetcher& pf) {
  std::vector<LoadedBatch> out;
  while (pf.delivered() < pf.batches()) out.push_back(pf.next());
  return out;
}

}  // namespace

TEST(Prefetcher, MatchesSynchronousLoadingForEveryWorkerCount) {
  const auto files = nih_images(12);
  ASSERT_EQ(files.size(), 12u);
  const int64_t n = 12, batches = 17;
  // The reference: today's loop, written out (load each item, stack).
  std::vector<std::vector<at::Tensor>> ref;
  for (int64_t k = 0; k < batches; ++k) {
    std::vector<at::Tensor> xs, ids;
    for (int64_t i : batch_indices(k, n)) {
      auto it = image_item(files)(i);
      xs.push_back(it[0]);
      ids.push_back(it[1]);
    }
    ref.push_back({at::stack(xs), at::stack(ids)});
  }
  for (int64_t workers : {0, 1, 2, 4})
    for (int64_t prefetch : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << "workers " << workers << ", prefetch " << prefetch);
      Prefetcher pf({batches, [&](int64_t k) { return batch_indices(k, n); }, image_item(files)}, {workers, prefetch});
      auto got = drain(pf);
      ASSERT_EQ(static_cast<int64_t>(got.size()), batches);
      for (int64_t k = 0; k < batches; ++k) {
        const auto& b = got[static_cast<size_t>(k)];
        EXPECT_EQ(b.number, k);
        EXPECT_EQ(b.indices, batch_indices(k, n));
        ASSERT_EQ(b.parts.size(), 2u);
        for (size_t p = 0; p < 2; ++p) {
          ASSERT_EQ(b.parts[p].sizes(), ref[static_cast<size_t>(k)][p].sizes());
          EXPECT_TRUE(at::equal(b.parts[p], ref[static_cast<size_t>(k)][p])) << "batch " << k << " part " << p;
        }
      }
      EXPECT_THROW(pf.next(), std::out_of_range);
    }
}

TEST(Prefetcher, ErrorInAnItemSurfacesAtItsBatchWithTheOriginalMessage) {
  // Items 9 and 11 fail; batch 2 = {8, 11, 9, 1}: its first failing item in batch order (11) is the error raised.
  auto indices = [](int64_t k) -> std::vector<int64_t> {
    if (k == 2) return {8, 11, 9, 1};
    return {k * 4, k * 4 + 1};
  };
  auto item = [](int64_t i) -> std::vector<at::Tensor> {
    if (i == 9 || i == 11) throw DataError("images/bad_" + std::to_string(i) + ".png: not a PNG file");
    return {at::full({2}, static_cast<double>(i))};
  };
  for (int64_t workers : {0, 1, 2, 4}) {
    SCOPED_TRACE(::testing::Message() << "workers " << workers);
    Prefetcher pf({5, indices, item}, {workers, 2});
    EXPECT_TRUE(at::equal(pf.next().parts[0], at::tensor({0.0, 0.0, 1.0, 1.0}).view({2, 2}).to(at::kFloat)));
    pf.next();
    try {
      pf.next();
      ADD_FAILURE() << "batch 2 must fail";
    } catch (const DataError& e) {
      EXPECT_EQ(std::string(e.what()), "images/bad_11.png: not a PNG file");
    }
    // The loader goes on after a failed batch.
    EXPECT_EQ(pf.next().indices, (std::vector<int64_t>{12, 13}));
  }
}

TEST(Prefetcher, DestructionMidStreamJoinsWithoutWaitingForTheRest) {
  std::atomic<int> running{0}, calls{0};
  auto item = [&](int64_t i) -> std::vector<at::Tensor> {
    ++running;
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --running;
    return {at::full({1}, i, at::kLong)};
  };
  auto indices = [](int64_t k) { return std::vector<int64_t>{k, k + 1, k + 2, k + 3}; };
  for (int64_t workers : {1, 2, 4}) {
    calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    {
      Prefetcher pf({1000, indices, item}, {workers, 3});
      pf.next();
      pf.next();
    }  // 998 batches left: destruction must not load them
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(running.load(), 0) << "an item still runs after destruction";
    const int after = calls.load();
    EXPECT_LE(after, 4 * (2 + 3) + 4) << "loaded far more than the prefetch window";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(calls.load(), after) << "a worker kept loading after destruction";
    EXPECT_LT(s, 5.0);
  }
  // Unwinding from an exception thrown by the consumer, with batches still queued.
  EXPECT_THROW(
      {
        Prefetcher pf({1000, indices, item}, {2, 2});
        pf.next();
        throw std::runtime_error("consumer failed");
      },
      std::runtime_error);
  EXPECT_EQ(running.load(), 0);
  // Constructed and destroyed before anything was taken, and a job with no batches.
  { Prefetcher pf({1000, indices, item}, {4, 8}); }
  { Prefetcher pf({0, indices, item}, {2, 2}); }
  EXPECT_EQ(running.load(), 0);
}

TEST(Prefetcher, WorkersRunAtenSingleThreadedAndLeaveTheCallerAlone) {
  at::set_num_threads(2);
  std::atomic<int> seen{-1};
  Prefetcher pf({1, [](int64_t) { return std::vector<int64_t>{0}; },
                 [&](int64_t) -> std::vector<at::Tensor> {
                   seen = at::get_num_threads();
                   return {at::zeros({1})};
                 }},
                {1, 1});
  pf.next();
  EXPECT_EQ(seen.load(), 1);
  EXPECT_EQ(at::get_num_threads(), 2);
  // A thread started after the workers still gets the process-wide count (the workers did not change it).
  int later = -1;
  std::thread([&] { later = at::get_num_threads(); }).join();
  EXPECT_EQ(later, 2);
  at::set_num_threads(1);
}

TEST(Prefetcher, RejectsBadOptions) {
  auto indices = [](int64_t) { return std::vector<int64_t>{0}; };
  auto item = [](int64_t) { return std::vector<at::Tensor>{at::zeros({1})}; };
  daug::testing::expect_error_contains(
      [&] {
        Prefetcher pf({1, indices, item}, {-1, 2});
      },
      {"loader_workers must be >= 0, but got -1"});
  daug::testing::expect_error_contains(
      [&] {
        Prefetcher pf({1, indices, item}, {2, 0});
      },
      {"prefetch must be >= 1, but got 0"});
  EXPECT_THROW(Prefetcher({1, indices, item}, {2, 0}), ConfigError);
}

namespace {

class Dummy : public Trainable {
 public:
  Dummy() : w_(at::zeros({1}).requires_grad_(true)) {}
  std::vector<at::Tensor> parameters() override { return {w_}; }
  NamedTensors state() override { return {{"w", w_}}; }
  void load_state(const NamedTensors& s) override { copy_state_checked(state(), s, "dummy"); }
  void set_training(bool) override {}
  at::Tensor w_;
};

}  // namespace

TEST(StepLoader, ServesEachStepsBatchAndItsMicroBatchesAsTheSynchronousLoad) {
  daug::testing::TempDir dir;
  auto item = [](int64_t i) { return std::vector<at::Tensor>{at::full({2}, static_cast<double>(i)) * 0.5}; };
  auto sync = [&](const std::vector<int64_t>& idx) {
    std::vector<at::Tensor> xs;
    for (int64_t i : idx) xs.push_back(item(i)[0]);
    return at::stack(xs);
  };
  for (int64_t workers : {0, 2}) {
    for (int stop : {3, -1}) {  // an interrupted run (3 steps) then its resumption; then a whole run
      SCOPED_TRACE(::testing::Message() << "workers " << workers << ", stop_after " << stop);
      if (stop == 3) std::filesystem::remove_all(dir / "ck");
      std::filesystem::create_directories(dir / "ck");
      TrainerOptions o;
      o.dataset_size = 11;
      o.batch_size = 4;
      o.epochs = 3;
      o.seed = 5;
      o.log_every_s = 1e9;
      o.checkpoint_path = dir / "ck" / "checkpoint.safetensors";
      o.losses_path = dir / "ck" / "losses.csv";
      o.stop_after = stop;
      Dummy model;
      Trainer trainer(model, o);
      StepLoader loader(trainer, item, {workers, 2}, c10::Device("cpu"));
      BatchSampler expect(o.dataset_size, o.batch_size, o.drop_last, o.seed, o.seed_policy);
      int64_t steps = 0, first = -1;
      trainer.run([&](const std::vector<int64_t>& idx, int64_t step) -> StepOutput {
        EXPECT_EQ(idx, expect.batch(step));
        EXPECT_TRUE(at::equal(loader.get(idx, step)[0], sync(idx)));
        // Micro-batches (gradient accumulation): contiguous runs of the step's batch, then the whole again.
        std::vector<int64_t> head(idx.begin(), idx.begin() + 2), tail(idx.begin() + 2, idx.end());
        EXPECT_TRUE(at::equal(loader.get(head, step)[0], sync(head)));
        EXPECT_TRUE(at::equal(loader.get(tail, step)[0], sync(tail)));
        // Not a run of the batch: loaded synchronously, still right.
        std::vector<int64_t> odd = {idx[3], idx[0]};
        EXPECT_TRUE(at::equal(loader.get(odd, step)[0], sync(odd)));
        if (steps++ == 0) first = step;
        return {(model.w_ - 1).pow(2).sum(), {}};
      });
      EXPECT_EQ(steps, 3);  // 6 steps in all (2 per epoch): 3, then the resumed 3
      EXPECT_EQ(first, stop == 3 ? 0 : 3);
    }
  }
}
