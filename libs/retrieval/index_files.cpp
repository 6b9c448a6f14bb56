// Reading and writing the files of a retrieval index (daug/retrieval/index_files.h).
#include <daug/retrieval/index_files.h>

#include <daug/checkpoint.h>
#include <daug/data/csv.h>
#include <daug/data/hash.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/labels.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

namespace daug::retrieval {
namespace {

// CSV field quoting (RFC 4180): ids and paths may hold commas or quotes.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string label_cell(float v) {
  if (std::isnan(v)) return "";
  if (v == 1.0f) return "1";
  if (v == 0.0f) return "0";
  if (v == -1.0f) return "-1";
  return fmt::format("{}", v);
}

template <class T>
T get(const nlohmann::json& j, const char* key, const std::filesystem::path& file) {
  auto it = j.find(key);
  if (it == j.end())
    throw DataError(
        fmt::format("{}: missing key '{}' (expected a {} index manifest)", file.string(), key, kIndexFormat));
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw DataError(fmt::format("{}: key '{}' has the wrong type: {}", file.string(), key, it->dump()));
  }
}

}  // namespace

std::string IndexManifest::to_json() const {
  nlohmann::json j;
  j["format"] = kIndexFormat;
  j["count"] = count;
  j["dim"] = dim;
  j["dtype"] = dtype;
  j["embeddings"] = kEmbeddingsFile;
  j["items"] = kItemsFile;
  j["class_embeddings"] = kClassEmbeddingsFile;
  j["config"] = kConfigFile;
  j["normalized"] = true;
  j["model"] = {{"fingerprint", model_fingerprint},       {"checkpoint", checkpoint},
                {"checkpoint_sha256", checkpoint_sha256}, {"checkpoint_step", checkpoint_step},
                {"backbone_table", backbone_table},       {"backbone", backbone},
                {"composer_table", composer_table},       {"composer", composer}};
  j["heatmaps"] = {
      {"maps", heatmap_maps}, {"stage", heatmaps_stage}, {"origin", heatmaps_origin}, {"prep", heatmap_prep}};
  j["preprocessing"] = {{"image_size", image_size}, {"image", preprocessing}};
  j["classes"] = std::vector<std::string>(kChexpertClasses.begin(), kChexpertClasses.end());
  j["prompts"] = prompts;
  j["class_logit_scale"] = class_logit_scale;
  j["source"] = {{"table", source_table}, {"describe", source}, {"fingerprint", source_fingerprint}, {"split", split}};
  j["stage"] = {{"table", stage_table}, {"output_dir", stage_dir}, {"cache_dir", cache_dir}};
  return j.dump(2) + "\n";
}

IndexManifest IndexManifest::read(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  DAUG_CHECK_AS(DataError, in.good(), "cannot read the index manifest ", file.string(),
                " (expected a directory written by `daug index build`)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: not valid JSON ({})", file.string(), e.what()));
  }
  DAUG_CHECK_AS(DataError, j.is_object(), file.string(), ": expected a JSON object");
  const auto format = get<std::string>(j, "format", file);
  DAUG_CHECK_AS(DataError, format == kIndexFormat, file.string(), ": format is '", format, "', but this daug reads '",
                kIndexFormat, "'");
  IndexManifest m;
  m.count = get<int64_t>(j, "count", file);
  m.dim = get<int64_t>(j, "dim", file);
  m.dtype = get<std::string>(j, "dtype", file);
  DAUG_CHECK_AS(DataError, m.dtype == "float32" || m.dtype == "float16", file.string(),
                ": dtype must be float32 or float16, but is '", m.dtype, "'");
  DAUG_CHECK_AS(DataError, m.count > 0 && m.dim > 0, file.string(), ": count and dim must be > 0, but are ", m.count,
                " and ", m.dim);
  const auto model = get<nlohmann::json>(j, "model", file);
  m.model_fingerprint = get<std::string>(model, "fingerprint", file);
  m.checkpoint = get<std::string>(model, "checkpoint", file);
  m.checkpoint_sha256 = get<std::string>(model, "checkpoint_sha256", file);
  m.checkpoint_step = get<std::string>(model, "checkpoint_step", file);
  m.backbone_table = get<std::string>(model, "backbone_table", file);
  m.backbone = get<std::string>(model, "backbone", file);
  m.composer_table = get<std::string>(model, "composer_table", file);
  m.composer = get<std::string>(model, "composer", file);
  const auto heat = get<nlohmann::json>(j, "heatmaps", file);
  m.heatmap_maps = get<int64_t>(heat, "maps", file);
  m.heatmaps_stage = get<std::string>(heat, "stage", file);
  m.heatmaps_origin = get<std::string>(heat, "origin", file);
  m.heatmap_prep = get<std::string>(heat, "prep", file);
  const auto prep = get<nlohmann::json>(j, "preprocessing", file);
  m.image_size = get<int64_t>(prep, "image_size", file);
  m.preprocessing = get<std::string>(prep, "image", file);
  m.prompts = get<std::vector<std::string>>(j, "prompts", file);
  DAUG_CHECK_AS(DataError, m.prompts.size() == kChexpertClasses.size(), file.string(), ": 'prompts' must hold ",
                kChexpertClasses.size(), " class prompts, but holds ", m.prompts.size());
  m.class_logit_scale = get<double>(j, "class_logit_scale", file);
  const auto src = get<nlohmann::json>(j, "source", file);
  m.source_table = get<std::string>(src, "table", file);
  m.source = get<std::string>(src, "describe", file);
  m.source_fingerprint = get<std::string>(src, "fingerprint", file);
  m.split = get<std::string>(src, "split", file);
  const auto st = get<nlohmann::json>(j, "stage", file);
  m.stage_table = get<std::string>(st, "table", file);
  m.stage_dir = get<std::string>(st, "output_dir", file);
  m.cache_dir = get<std::string>(st, "cache_dir", file);
  return m;
}

void write_items_csv(const std::filesystem::path& file, const std::vector<IndexItem>& items) {
  std::ostringstream out;
  out << "row,id,split,image,labels";
  for (const char* c : kChexpertClasses) out << ',' << csv_field(c);
  out << '\n';
  for (size_t r = 0; r < items.size(); ++r) {
    const auto& it = items[r];
    std::string positives;
    for (size_t c = 0; c < it.labels.size() && c < kChexpertClasses.size(); ++c)
      if (!std::isnan(it.labels[c]) && it.labels[c] > 0.5f)
        positives += (positives.empty() ? "" : "|") + std::string(kChexpertClasses[c]);
    out << r << ',' << csv_field(it.id) << ',' << csv_field(it.split) << ',' << csv_field(it.image) << ','
        << csv_field(positives);
    for (size_t c = 0; c < kChexpertClasses.size(); ++c)
      out << ',' << (c < it.labels.size() ? label_cell(it.labels[c]) : std::string());
    out << '\n';
  }
  write_file_atomic(file, out.str());
}

std::vector<IndexItem> read_items_csv(const std::filesystem::path& file) {
  const auto t = data::CsvTable::read(file);
  const size_t row = t.column("row"), id = t.column("id"), split = t.column("split"), image = t.column("image");
  std::vector<size_t> cls;
  for (const char* c : kChexpertClasses) cls.push_back(t.column(c));
  std::vector<IndexItem> out;
  for (size_t r = 0; r < t.rows(); ++r) {
    const auto where = fmt::format("{}:{}", file.string(), t.line_of(r));
    const int64_t n = t.integer(r, row);
    DAUG_CHECK_AS(DataError, n == static_cast<int64_t>(r), where, ": column 'row' must be ", r,
                  " (rows in order from 0), but is ", n);
    IndexItem it{t.at(r, id), t.at(r, split), t.at(r, image), {}};
    for (size_t k = 0; k < cls.size(); ++k)
      it.labels.push_back(t.at(r, cls[k]).empty() ? NAN : static_cast<float>(t.number(r, cls[k])));
    out.push_back(std::move(it));
  }
  return out;
}

at::Tensor load_embeddings(const std::filesystem::path& file, int64_t rows, int64_t dim) {
  at::Tensor e = data::load_npy(file);
  DAUG_CHECK_AS(DataError,
                e.dim() == 2 && e.size(0) == rows && e.size(1) == dim &&
                    (e.scalar_type() == at::kFloat || e.scalar_type() == at::kHalf),
                file.string(), ": expected float32/float16 [", rows, ", ", dim, "] as index.json says, but found ",
                e.scalar_type(), " ", e.sizes());
  e = e.to(at::kFloat).contiguous();
  DAUG_CHECK_AS(DataError, at::isfinite(e).all().item<bool>(), file.string(), ": holds non-finite values");
  return e;
}

LoadedIndex load_index(const std::filesystem::path& dir) {
  DAUG_CHECK_AS(DataError, std::filesystem::is_directory(dir), "index directory ", dir.string(),
                " does not exist (build one with `daug index build CONFIG --out DIR`)");
  LoadedIndex x;
  x.dir = dir;
  x.manifest = IndexManifest::read(dir / kManifestFile);
  x.items = read_items_csv(dir / kItemsFile);
  DAUG_CHECK_AS(DataError, static_cast<int64_t>(x.items.size()) == x.manifest.count, (dir / kItemsFile).string(),
                ": holds ", x.items.size(), " rows, but index.json says count = ", x.manifest.count);
  x.embeddings = load_embeddings(dir / kEmbeddingsFile, x.manifest.count, x.manifest.dim);
  x.class_embeddings =
      load_embeddings(dir / kClassEmbeddingsFile, static_cast<int64_t>(kChexpertClasses.size()), x.manifest.dim);
  return x;
}

std::string model_fingerprint(const std::string& checkpoint_sha256, const std::string& backbone_fingerprint,
                              const std::string& backbone, const std::string& composer, const std::string& heatmap_prep,
                              const std::vector<std::string>& prompts) {
  std::string text =
      checkpoint_sha256 + "\n" + backbone_fingerprint + "\n" + backbone + "\n" + composer + "\n" + heatmap_prep;
  for (const auto& p : prompts) text += "\n" + p;
  return data::sha256_hex(text);
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string file_sha256(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  DAUG_CHECK_AS(DataError, in.good(), "cannot read ", file.string());
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return data::sha256_hex(bytes.str());
}

}  // namespace daug::retrieval
