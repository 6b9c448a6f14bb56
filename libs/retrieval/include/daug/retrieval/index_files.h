#pragma once
/// The files of a retrieval index (`daug index build` writes them, `daug query` reads them), format
/// "daug.index/1", all in one directory:
///   index.json            what the index is: counts, dtype, the model's fingerprint and checkpoint, the tables that
///                         build it, the preprocessing, the class prompts, where its heatmaps came from
///   embeddings.npy        [N, D] L2-normalised image embeddings, float32 or float16 (row r = items.csv row r)
///   items.csv             row,id,split,image,labels,<14 CheXpert classes> (1 / 0 / blank = unknown)
///   class_embeddings.npy  [14, D] float32 L2-normalised text embeddings of the 14 class prompts
///   config.toml           the effective configuration of the run that built it (every option of every table)
/// Static library `daug_retrieval` (no <torch/torch.h> in this header).
#include <daug/tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace daug::retrieval {

inline constexpr const char* kIndexFormat = "daug.index/1";
inline constexpr const char* kManifestFile = "index.json";
inline constexpr const char* kEmbeddingsFile = "embeddings.npy";
inline constexpr const char* kItemsFile = "items.csv";
inline constexpr const char* kClassEmbeddingsFile = "class_embeddings.npy";
inline constexpr const char* kConfigFile = "config.toml";

/// One indexed image. `labels`: 14 values in kChexpertClasses order, NaN = unknown.
struct IndexItem {
  std::string id;
  std::string split;
  std::string image;
  std::vector<float> labels;
};

/// index.json. Paths are absolute (the index may be read from another directory).
struct IndexManifest {
  int64_t count = 0;
  int64_t dim = 0;
  std::string dtype = "float32";  ///< of embeddings.npy: "float32" | "float16"
  // The model.
  std::string model_fingerprint;  ///< sha256 over the checkpoint's bytes, the backbone's and the composer's identity
  std::string checkpoint;         ///< fine-tuned weights loaded into the backbone ("" = the backbone as built)
  std::string checkpoint_sha256;  ///< of the checkpoint file's bytes ("" without one)
  std::string checkpoint_step;
  std::string backbone_table = "backbone";
  std::string backbone;        ///< its describe()
  std::string composer_table;  ///< "" = plain image (no heatmap channel)
  std::string composer;
  int64_t heatmap_maps = 0;     ///< heatmaps composed per image (0: the model reads none)
  std::string heatmaps_stage;   ///< stage table the heatmaps came from ("" = an external heatmap_dir or none)
  std::string heatmaps_origin;  ///< the index.csv or directory they were read from
  std::string heatmap_prep;     ///< "released" | "resize"
  // Preprocessing.
  int64_t image_size = 0;
  std::string preprocessing;  ///< one line saying how pixels became model input
  // Classification.
  std::vector<std::string> prompts;  ///< 14 class prompts (kChexpertClasses order)
  double class_logit_scale = 4.602;  ///< probability = sigmoid(exp(this)·cos(image, prompt))
  // Provenance.
  std::string source_table;
  std::string source;  ///< the Source's describe()
  std::string source_fingerprint;
  std::string split;
  std::string stage_table;
  std::string stage_dir;  ///< the cached stage output the index was copied from
  std::string cache_dir;  ///< absolute [run].cache_dir of the build (query-time heatmaps reuse its models)

  std::string to_json() const;
  /// Parses index.json; DataError naming the file and key on a missing/mistyped key or another format.
  static IndexManifest read(const std::filesystem::path& file);
};

void write_items_csv(const std::filesystem::path& file, const std::vector<IndexItem>& items);
/// DataError with file:line on a malformed row or a row number out of order.
std::vector<IndexItem> read_items_csv(const std::filesystem::path& file);

/// embeddings.npy as float32 [rows, dim]; DataError naming the file when its dtype or shape is not what
/// index.json says.
at::Tensor load_embeddings(const std::filesystem::path& file, int64_t rows, int64_t dim);

/// The index in `dir`, checked for consistency (counts, dims, items), embeddings as float32.
struct LoadedIndex {
  std::filesystem::path dir;
  IndexManifest manifest;
  std::vector<IndexItem> items;
  at::Tensor embeddings;        ///< [N, D] float32
  at::Tensor class_embeddings;  ///< [14, D] float32
};
LoadedIndex load_index(const std::filesystem::path& dir);

/// The model identity index.json records and `daug query` checks: sha256 over the checkpoint's sha256, the
/// backbone's fingerprint() and describe(), the composer's describe(), the heatmap preparation and the prompts.
std::string model_fingerprint(const std::string& checkpoint_sha256, const std::string& backbone_fingerprint,
                              const std::string& backbone, const std::string& composer, const std::string& heatmap_prep,
                              const std::vector<std::string>& prompts);

/// `s` as a TOML basic string ("..." with quotes, backslashes and control characters escaped), for the `--set
/// table.key=VALUE` overrides `daug index build` and `daug query` pass to the core (paths, table names).
std::string toml_string(const std::string& s);

/// sha256 hex of a file's bytes, read in blocks (checkpoints may be hundreds of MB).
std::string file_sha256(const std::filesystem::path& file);

}  // namespace daug::retrieval
