// The index files of libs/retrieval: round trips, and that a damaged index is refused naming the file and key.
#include <daug/retrieval/index_files.h>

#include "test_support.h"

#include <daug/checkpoint.h>
#include <daug/data/hash.h>
#include <daug/data/npy.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

using namespace daug;
using daug::testing::expect_error_contains;

namespace {

retrieval::IndexManifest manifest(int64_t n, int64_t d) {
  retrieval::IndexManifest m;
  m.count = n;
  m.dim = d;
  m.model_fingerprint = "fp";
  m.checkpoint = "/x/checkpoint.safetensors";
  m.backbone = "clip_vit(tiny)";
  m.composer_table = "clip_composer";
  m.heatmap_maps = 1;
  m.heatmaps_stage = "heatmaps";
  m.prompts = std::vector<std::string>(14, "a prompt");
  m.prompts[3] = "with \"quotes\", commas";
  m.class_logit_scale = 4.602;
  m.source_table = "data";
  m.split = "all";
  m.cache_dir = "/c";
  return m;
}

void write_index(const std::filesystem::path& dir, int64_t n, int64_t d, bool half = false) {
  std::filesystem::create_directories(dir);
  write_file_atomic(dir / retrieval::kManifestFile, manifest(n, d).to_json());
  at::Tensor e = at::randn({n, d});
  e = e / e.norm(2, 1, true);
  data::save_npy(dir / retrieval::kEmbeddingsFile, half ? e.to(at::kHalf) : e);
  data::save_npy(dir / retrieval::kClassEmbeddingsFile, at::randn({14, d}));
  std::vector<retrieval::IndexItem> items;
  for (int64_t i = 0; i < n; ++i)
    items.push_back(
        {"id" + std::to_string(i), "test", "/img/" + std::to_string(i) + ".png", std::vector<float>(14, 0.0f)});
  retrieval::write_items_csv(dir / retrieval::kItemsFile, items);
}

}  // namespace

TEST(IndexFiles, ManifestRoundTrips) {
  const auto m = manifest(7, 5);
  daug::testing::TempDir tmp;
  write_file_atomic(tmp / "index.json", m.to_json());
  const auto r = retrieval::IndexManifest::read(tmp / "index.json");
  EXPECT_EQ(r.count, 7);
  EXPECT_EQ(r.dim, 5);
  EXPECT_EQ(r.prompts, m.prompts);
  EXPECT_EQ(r.checkpoint, m.checkpoint);
  EXPECT_EQ(r.heatmaps_stage, "heatmaps");
  EXPECT_DOUBLE_EQ(r.class_logit_scale, 4.602);
  EXPECT_EQ(r.to_json(), m.to_json());
}

TEST(IndexFiles, ItemsCsvKeepsQuotedFieldsAndUnknownLabels) {
  daug::testing::TempDir tmp;
  std::vector<float> labels(14, 0.0f);
  labels[1] = 1.0f;
  labels[2] = NAN;
  labels[3] = -1.0f;
  retrieval::write_items_csv(tmp / "items.csv", {{"a,\"b\"", "train", "/p/x, y.png", labels}});
  const auto items = retrieval::read_items_csv(tmp / "items.csv");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].id, "a,\"b\"");
  EXPECT_EQ(items[0].image, "/p/x, y.png");
  EXPECT_EQ(items[0].labels[1], 1.0f);
  EXPECT_TRUE(std::isnan(items[0].labels[2]));
  EXPECT_EQ(items[0].labels[3], -1.0f);
  EXPECT_EQ(items[0].labels[0], 0.0f);
}

TEST(IndexFiles, Float16EmbeddingsLoadAsFloat32) {
  daug::testing::TempDir tmp;
  write_index(tmp / "idx", 6, 4, /*half=*/true);
  const auto x = retrieval::load_index(tmp / "idx");
  EXPECT_EQ(x.embeddings.scalar_type(), at::kFloat);
  EXPECT_EQ(x.embeddings.sizes(), (at::IntArrayRef{6, 4}));
  // float16 keeps about 3 decimal digits: the rows stay unit length to 1e-3.
  EXPECT_LT((x.embeddings.norm(2, 1) - 1).abs().max().item<double>(), 1e-3);
}

TEST(IndexFiles, DamagedIndexIsRefusedNamingTheFile) {
  daug::testing::TempDir tmp;
  write_index(tmp / "idx", 6, 4);
  // A count that disagrees with items.csv.
  write_file_atomic(tmp / "idx" / retrieval::kManifestFile, manifest(5, 4).to_json());
  expect_error_contains([&] { retrieval::load_index(tmp / "idx"); }, {"items.csv", "6 rows", "count = 5"});
  // Embeddings of another dim.
  write_file_atomic(tmp / "idx" / retrieval::kManifestFile, manifest(6, 3).to_json());
  expect_error_contains([&] { retrieval::load_index(tmp / "idx"); }, {"embeddings.npy", "[6, 3]", "[6, 4]"});
  // Another format, a missing key, not JSON.
  write_file_atomic(tmp / "idx" / retrieval::kManifestFile, R"({"format": "daug.index/9"})");
  expect_error_contains([&] { retrieval::load_index(tmp / "idx"); }, {"index.json", "daug.index/9", "daug.index/1"});
  write_file_atomic(tmp / "idx" / retrieval::kManifestFile, R"({"format": "daug.index/1", "count": 6})");
  expect_error_contains([&] { retrieval::load_index(tmp / "idx"); }, {"index.json", "missing key 'dim'"});
  write_file_atomic(tmp / "idx" / retrieval::kManifestFile, "{");
  expect_error_contains([&] { retrieval::load_index(tmp / "idx"); }, {"index.json", "not valid JSON"});
  expect_error_contains([&] { retrieval::load_index(tmp / "nope"); }, {"nope", "does not exist"});
}

TEST(IndexFiles, ModelFingerprintChangesWithEachPart) {
  const std::vector<std::string> p(14, "x");
  const auto base = retrieval::model_fingerprint("a", "b", "c", "d", "released", p);
  EXPECT_EQ(base, retrieval::model_fingerprint("a", "b", "c", "d", "released", p));
  EXPECT_NE(base, retrieval::model_fingerprint("A", "b", "c", "d", "released", p));
  EXPECT_NE(base, retrieval::model_fingerprint("a", "b", "c", "", "released", p));
  EXPECT_NE(base, retrieval::model_fingerprint("a", "b", "c", "d", "resize", p));
  auto q = p;
  q[13] = "y";
  EXPECT_NE(base, retrieval::model_fingerprint("a", "b", "c", "d", "released", q));
}

TEST(IndexFiles, FileSha256IsTheSha256OfTheBytes) {
  daug::testing::TempDir tmp;
  write_file_atomic(tmp / "f", "abc");
  // FIPS 180-2 test vector.
  EXPECT_EQ(retrieval::file_sha256(tmp / "f"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(IndexFiles, TomlStringEscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(retrieval::toml_string("/a b/c.png"), "\"/a b/c.png\"");
  EXPECT_EQ(retrieval::toml_string("say \"x\" \\ y"), "\"say \\\"x\\\" \\\\ y\"");
  EXPECT_EQ(retrieval::toml_string("a\nb\tc"), "\"a\\u000Ab\\u0009c\"");
}
