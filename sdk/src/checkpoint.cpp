// safetensors reader/writer (bounds-checked) and atomic file writes.
#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/fingerprint.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <unordered_map>
#include <unistd.h>
#include <fcntl.h>

namespace daug {
namespace {

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeInfo kDtypes[] = {{"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
                                 {"F64", at::kDouble}, {"I64", at::kLong}, {"I32", at::kInt},
                                 {"I16", at::kShort},  {"I8", at::kChar},  {"U8", at::kByte},
                                 {"BOOL", at::kBool}};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw Error(fmt::format("safetensors: unsupported dtype {}", c10::toString(t)));
}

std::string shape_str(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

void fsync_and_rename(const std::filesystem::path& tmp, const std::filesystem::path& path) {
  int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw DataError(fmt::format("cannot rename {} to {}: {}", tmp.string(), path.string(), ec.message()));
}

std::filesystem::path temp_for(const std::filesystem::path& path) {
  return path.string() + fmt::format(".tmp{}", ::getpid());
}

}  // namespace

void write_file_atomic(const std::filesystem::path& path, const std::string& text) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  auto tmp = temp_for(path);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw DataError(fmt::format("cannot open {} for writing", tmp.string()));
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!f) throw DataError(fmt::format("write to {} failed (disk full?)", tmp.string()));
  }
  fsync_and_rename(tmp, path);
}

void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, t0] : tensors) {
    DAUG_CHECK(t0.defined(), "save_safetensors: tensor '", name, "' is undefined");
    DAUG_CHECK(!header.contains(name), "save_safetensors: duplicate key '", name, "'");
    at::Tensor t = t0.detach().to(at::kCPU).contiguous();
    uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(t);
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');  // alignment, as the reference writer does
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  auto tmp = temp_for(path);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw DataError(fmt::format("cannot open {} for writing", tmp.string()));
    uint64_t n = h.size();
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(n >> (8 * i));
    f.write(reinterpret_cast<const char*>(le), 8);
    f.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& t : blobs)
      f.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    if (!f) throw DataError(fmt::format("write to {} failed (disk full?)", tmp.string()));
  }
  fsync_and_rename(tmp, path);
}

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  const std::string p = path.string();
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(fmt::format("{}: cannot open safetensors file", p));
  f.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(f.tellg());
  f.seekg(0);
  if (file_size < 8) throw DataError(fmt::format("{}: truncated safetensors file ({} bytes, need at least 8)", p, file_size));
  unsigned char le[8];
  f.read(reinterpret_cast<char*>(le), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(le[i]) << (8 * i);
  if (n > file_size - 8 || n > (100ull << 20))
    throw DataError(fmt::format("{}: safetensors header length {} exceeds the file ({} bytes): truncated or not a "
                                "safetensors file", p, n, file_size));
  std::string h(n, '\0');
  f.read(h.data(), static_cast<std::streamsize>(n));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(h);
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: safetensors header is not valid JSON: {}", p, e.what()));
  }
  if (!header.is_object()) throw DataError(fmt::format("{}: safetensors header must be a JSON object", p));
  const uint64_t data_size = file_size - 8 - n;
  SafetensorsFile out;
  struct Entry { std::string name; at::ScalarType type; std::vector<int64_t> shape; uint64_t b, e; };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (v.is_object())
        for (auto m = v.begin(); m != v.end(); ++m)
          if (m.value().is_string()) out.metadata[m.key()] = m.value().get<std::string>();
      continue;
    }
    try {
      std::string dt = v.at("dtype").get<std::string>();
      Entry en{name, at::kFloat, v.at("shape").get<std::vector<int64_t>>(), 0, 0};
      bool found = false;
      for (const auto& d : kDtypes)
        if (dt == d.name) en.type = d.type, found = true;
      if (!found) throw DataError(fmt::format("{}: tensor '{}' has unsupported dtype '{}'", p, name, dt));
      auto offs = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (offs.size() != 2) throw DataError(fmt::format("{}: tensor '{}': data_offsets must have 2 entries", p, name));
      en.b = offs[0];
      en.e = offs[1];
      // Overflow-checked: a forged shape must not wrap the byte count around to the span (fuzz/regressions/safetensors).
      uint64_t want = c10::elementSize(en.type);
      for (auto s : en.shape) {
        if (s < 0) throw DataError(fmt::format("{}: tensor '{}' has a negative dimension", p, name));
        if (__builtin_mul_overflow(want, static_cast<uint64_t>(s), &want))
          throw DataError(fmt::format("{}: tensor '{}' {} {} has more elements than fit in memory", p, name, dt,
                                      shape_str(en.shape)));
      }
      if (en.e < en.b || en.e - en.b != want)
        throw DataError(fmt::format("{}: tensor '{}' {} {} needs {} bytes, but its data_offsets [{}, {}] span {}", p,
                                    name, dt, shape_str(en.shape), want, en.b, en.e, en.e - en.b));
      if (en.e > data_size)
        throw DataError(fmt::format("{}: tensor '{}' ends at byte {} of the data section, but the file holds only {} "
                                    "bytes of data (truncated file?)", p, name, en.e, data_size));
      entries.push_back(std::move(en));
    } catch (const nlohmann::json::exception& e) {
      throw DataError(fmt::format("{}: malformed header entry for tensor '{}': {}", p, name, e.what()));
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.b != b.b ? a.b < b.b : a.e < b.e; });
  // The format requires the tensors to tile the data section: no overlaps, no gaps, nothing after the last one
  // (as the reference reader's validation does).
  uint64_t expect = 0;
  const Entry* prev = nullptr;
  for (const auto& en : entries) {
    if (en.b < expect)
      throw DataError(
          fmt::format("{}: tensor '{}' [{}, {}) overlaps tensor '{}' [{}, {}) in the data section; "
                      "safetensors tensors must not share bytes",
                      p, en.name, en.b, en.e, prev->name, prev->b, prev->e));
    if (en.b > expect)
      throw DataError(
          fmt::format("{}: {} unused bytes [{}, {}) before tensor '{}' in the data section; "
                      "safetensors tensors must be contiguous",
                      p, en.b - expect, expect, en.b, en.name));
    expect = en.e;
    prev = &en;
  }
  if (expect != data_size)
    throw DataError(
        fmt::format("{}: the tensors end at byte {} of the data section, but it holds {} bytes; "
                    "{} trailing bytes belong to no tensor",
                    p, expect, data_size, data_size - expect));
  for (const auto& en : entries) {
    at::Tensor t = at::empty(en.shape, at::TensorOptions().dtype(en.type));
    f.seekg(static_cast<std::streamoff>(8 + n + en.b));
    f.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(en.e - en.b));
    if (!f) throw DataError(fmt::format("{}: could not read tensor '{}' (truncated file?)", p, en.name));
    out.tensors.emplace_back(en.name, t);
  }
  return out;
}

void copy_state_checked(const NamedTensors& dst, const NamedTensors& src, const std::string& source) {
  std::unordered_map<std::string, const at::Tensor*> have;
  for (const auto& [k, t] : src) have[k] = &t;
  std::vector<std::string> missing, unexpected;
  for (const auto& [k, t] : dst) {
    auto it = have.find(k);
    if (it == have.end()) {
      missing.push_back(k);
      continue;
    }
    if (it->second->sizes() != t.sizes())
      throw DataError(fmt::format("{}: tensor '{}' has shape {}, but the configured model expects {}", source, k,
                                  shape_str(it->second->sizes()), shape_str(t.sizes())));
  }
  std::unordered_map<std::string, bool> want;
  for (const auto& [k, t] : dst) want[k] = true;
  for (const auto& [k, t] : src)
    if (!want.count(k)) unexpected.push_back(k);
  auto head = [](const std::vector<std::string>& v) {
    std::vector<std::string> h(v.begin(), v.begin() + std::min<size_t>(v.size(), 8));
    return fmt::format("{}{}", fmt::join(h, ", "), v.size() > 8 ? fmt::format(", ... ({} in all)", v.size()) : "");
  };
  if (!missing.empty())
    throw DataError(fmt::format("{}: missing tensor(s) the configured model needs: {}", source, head(missing)));
  if (!unexpected.empty())
    throw DataError(fmt::format("{}: unexpected tensor(s) the configured model does not have: {}", source,
                                head(unexpected)));
  at::NoGradGuard no_grad;
  for (const auto& [k, t] : dst) {
    at::Tensor d = t;
    d.copy_(*have[k]);
  }
}

}  // namespace daug

// ------------------------------------------------------------------------------------------------ fingerprints
namespace daug {
namespace {
uint64_t fnv1a_update(uint64_t h, const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ull;
  }
  return h;
}
}  // namespace

std::string file_fingerprint(const std::filesystem::path& file, uintmax_t hash_limit) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return file.string() + " missing";
  const auto mtime = std::filesystem::last_write_time(file, ec).time_since_epoch().count();
  std::string out = fmt::format("{} {} {}", file.string(), size, static_cast<long long>(mtime));
  if (size <= hash_limit) {
    std::ifstream in(file, std::ios::binary);
    uint64_t h = 1469598103934665603ull;
    std::vector<char> buf(1 << 16);
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      h = fnv1a_update(h, buf.data(), static_cast<size_t>(in.gcount()));
    }
    out += fmt::format(" {:016x}", h);
  }
  return out;
}

std::string files_fingerprint(const std::vector<std::filesystem::path>& meta_files,
                              const std::vector<std::filesystem::path>& files) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& f : meta_files) {
    const std::string s = file_fingerprint(f) + "\n";
    h = fnv1a_update(h, s.data(), s.size());
  }
  for (const auto& f : files) {
    const std::string s = file_fingerprint(f, 0) + "\n";
    h = fnv1a_update(h, s.data(), s.size());
  }
  return fmt::format("{} meta + {} files {:016x}", meta_files.size(), files.size(), h);
}

}  // namespace daug
