// The index stage: rows are the backbone's normalised embeddings of the source's images in order (computed here
// independently from the image files), a killed build resumes at its first unfinished chunk, a damaged chunk is
// redone, and float16 indexes hold the same rows to half precision.
#include "index_stage.h"

#include "clip_common.h"
#include "clip_data.h"
#include "fakes/fake_backbone.h"
#include "fakes/fake_source.h"
#include "test_support.h"

#include <daug/checkpoint.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/retrieval/index_files.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

using namespace daug;

namespace {

struct Fixture {
  daug::testing::TempDir tmp;
  std::shared_ptr<daug::testing::FakeSource> src;
  Fixture() {
    at::set_num_threads(1);
    src = std::make_shared<daug::testing::FakeSource>(tmp / "images", 10, 3);
  }
  plugins::IndexOptions options(int64_t chunk_rows) const {
    plugins::IndexOptions o;
    o.composer = "";
    o.train_stage = "";
    o.chunk_rows = chunk_rows;
    o.batch_size = 2;
    return o;
  }
  void run(Stage& st, const std::filesystem::path& out) {
    daug::testing::run_stage(st, out, daug::testing::single_artifact("none", "none", {}));
  }
};

/// The backbone's normalised embedding of each image, one image at a time, with the CLIP input the evaluate and
/// train_clip stages build (clip::clip_batch; the index must embed as the model was trained).
at::Tensor direct_embeddings(Backbone& bb, const Source& src) {
  at::NoGradGuard g;
  std::vector<at::Tensor> rows;
  for (const auto& s : src.samples())
    rows.push_back(clip::l2_normalize(bb.encode_image(clip::clip_batch({&s}, bb.image_size(), nullptr, {}, at::kCPU))));
  return at::cat(rows, 0);
}

}  // namespace

TEST(IndexStage, RowsAreTheNormalisedImageEmbeddingsInSourceOrder) {
  Fixture f;
  auto bb = std::make_shared<daug::testing::FakeBackbone>();
  plugins::IndexStage st(f.options(4), f.src, bb, nullptr, "cpu", "index");
  f.run(st, f.tmp / "out");
  const auto x = retrieval::load_index(f.tmp / "out");
  ASSERT_EQ(x.items.size(), 10u);
  for (size_t i = 0; i < x.items.size(); ++i) {
    EXPECT_EQ(x.items[i].id, f.src->samples()[i].id);
    EXPECT_EQ(x.items[i].split, f.src->samples()[i].split);
  }
  EXPECT_TRUE(at::allclose(x.embeddings, direct_embeddings(*bb, *f.src), 1e-5, 1e-6));
  EXPECT_EQ(x.manifest.count, 10);
  EXPECT_EQ(x.manifest.dim, 8);
  EXPECT_EQ(x.manifest.prompts, clip::released_prompts());
  EXPECT_EQ(x.manifest.heatmap_maps, 0);
  EXPECT_FALSE(std::filesystem::exists(f.tmp / "out" / "chunks"));  // assembled and removed
  // The class embeddings are the normalised prompt embeddings.
  at::NoGradGuard g;
  const at::Tensor cls = clip::l2_normalize(bb->encode_text(bb->tokenize(clip::released_prompts())));
  EXPECT_TRUE(at::allclose(x.class_embeddings, cls, 1e-5, 1e-6));
}

TEST(IndexStage, AKilledBuildResumesAtItsFirstUnfinishedChunkAndRedoesADamagedOne) {
  Fixture f;
  // 10 rows in chunks of 4 (4 + 4 + 2), batches of 2: the backbone dies on its 4th batch, after chunk 0.
  auto dying = std::make_shared<daug::testing::FakeBackbone>();
  dying->fail_after_images = 3;
  plugins::IndexStage st1(f.options(4), f.src, dying, nullptr, "cpu", "index");
  daug::testing::expect_error_contains([&] { f.run(st1, f.tmp / "out"); }, {"injected failure"});
  EXPECT_TRUE(std::filesystem::exists(f.tmp / "out" / "chunks" / "chunk-000000.npy"));
  EXPECT_FALSE(std::filesystem::exists(f.tmp / "out" / "chunks" / "chunk-000001.npy"));
  EXPECT_FALSE(std::filesystem::exists(f.tmp / "out" / retrieval::kManifestFile));

  auto bb = std::make_shared<daug::testing::FakeBackbone>();
  plugins::IndexStage st2(f.options(4), f.src, bb, nullptr, "cpu", "index");
  f.run(st2, f.tmp / "out");
  EXPECT_EQ(bb->image_calls, 3);  // chunks 1 and 2 only: 2 + 1 batches
  const auto x = retrieval::load_index(f.tmp / "out");
  EXPECT_TRUE(at::allclose(x.embeddings, direct_embeddings(*bb, *f.src), 1e-5, 1e-6));

  // A damaged chunk (wrong shape) left by another build is redone, not trusted.
  std::filesystem::create_directories(f.tmp / "out2" / "chunks");
  data::save_npy(f.tmp / "out2" / "chunks" / "chunk-000001.npy", at::zeros({3, 8}));
  auto bb3 = std::make_shared<daug::testing::FakeBackbone>();
  plugins::IndexStage st3(f.options(4), f.src, bb3, nullptr, "cpu", "index");
  f.run(st3, f.tmp / "out2");
  EXPECT_EQ(bb3->image_calls, 5);  // every chunk
  EXPECT_TRUE(at::allclose(retrieval::load_index(f.tmp / "out2").embeddings, x.embeddings, 1e-6, 1e-7));
}

TEST(IndexStage, Float16IndexHoldsTheSameRowsToHalfPrecision) {
  Fixture f;
  auto bb = std::make_shared<daug::testing::FakeBackbone>();
  auto o = f.options(16);
  o.dtype = "float16";
  plugins::IndexStage st(o, f.src, bb, nullptr, "cpu", "index");
  f.run(st, f.tmp / "out");
  EXPECT_EQ(data::read_npy_info(f.tmp / "out" / retrieval::kEmbeddingsFile).dtype, at::kHalf);
  const auto x = retrieval::load_index(f.tmp / "out");
  EXPECT_EQ(x.manifest.dtype, "float16");
  const double err = (x.embeddings - direct_embeddings(*bb, *f.src)).abs().max().item<double>();
  EXPECT_GT(err, 0.0);         // really rounded
  EXPECT_LE(err, 0.5 / 1024);  // to 11 significant bits: |x| <= 1, so half a unit in the last place <= 2^-11
}

TEST(IndexStage, LoadsTheCheckpointAndRecordsItsSha256) {
  Fixture f;
  auto trained = std::make_shared<daug::testing::FakeBackbone>(8, 16, 24, /*seed=*/11);
  NamedTensors ck;
  for (auto& [k, t] : trained->state()) ck.emplace_back("model." + k, t.detach().clone());
  std::vector<std::string> prompts(14, "custom prompt");
  save_safetensors(f.tmp / "checkpoint.safetensors", ck, {});
  auto o = f.options(16);
  o.checkpoint = (f.tmp / "checkpoint.safetensors").string();
  o.prompts = prompts;
  auto bb = std::make_shared<daug::testing::FakeBackbone>(8, 16, 24, /*seed=*/1);
  plugins::IndexStage st(o, f.src, bb, nullptr, "cpu", "index");
  f.run(st, f.tmp / "out");
  const auto x = retrieval::load_index(f.tmp / "out");
  EXPECT_TRUE(at::allclose(x.embeddings, direct_embeddings(*trained, *f.src), 1e-5, 1e-6));
  EXPECT_EQ(x.manifest.checkpoint_sha256, retrieval::file_sha256(f.tmp / "checkpoint.safetensors"));
  EXPECT_EQ(x.manifest.prompts, prompts);
  EXPECT_EQ(x.manifest.model_fingerprint, retrieval::model_fingerprint(x.manifest.checkpoint_sha256, bb->fingerprint(),
                                                                       bb->describe(), "", "released", prompts));
}
