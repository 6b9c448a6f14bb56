// NumPy .npy reading and writing (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
//
// Writing produces exactly what numpy >= 1.23 writes for the same array: version 1.0 (2.0 if the header does
// not fit in 65535 bytes), the header dict with sorted keys and a trailing ", ", 21 - len(str(shape[0])) spare
// spaces for in-place growth, and space padding plus '\n' so that the data starts at a multiple of 64 bytes.
#include <daug/data/npy.h>

#include <daug/checkpoint.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace daug::data {
namespace {

struct DtypeInfo {
  const char* descr;
  at::ScalarType type;
  size_t itemsize;
};

const DtypeInfo kDtypes[] = {
    {"<f4", at::kFloat, 4}, {"<f8", at::kDouble, 8}, {"|u1", at::kByte, 1},
    {"<i8", at::kLong, 8},  {"<i4", at::kInt, 4},    {"|b1", at::kBool, 1},
    {"<f2", at::kHalf, 2},  // float16: compact retrieval-index embeddings
};

const char* kSupported = "<f4 (float32), <f8 (float64), <f2 (float16), |u1 (uint8), <i8 (int64), <i4 (int32), |b1 (bool)";

const DtypeInfo* dtype_for(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return &d;
  return nullptr;
}

const DtypeInfo* dtype_for(std::string descr) {
  // Single-byte types are endian-agnostic; numpy writes '|' but '<' and '=' are equivalent on read.
  if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '=') && (descr.substr(1) == "u1" || descr.substr(1) == "b1"))
    descr[0] = '|';
  if (descr.size() == 3 && descr[0] == '=') descr[0] = '<';  // native order on a little-endian host
  for (const auto& d : kDtypes)
    if (descr == d.descr) return &d;
  return nullptr;
}

// A tiny parser for the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& file) : s_(text), file_(file) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') { ++i_; break; }
      std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (peek() == '[') fail("structured dtypes (a list in 'descr') are not supported; supported: " +
                                std::string(kSupported));
        descr = parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = parse_bool();
        have_fortran = true;
      } else if (key == "shape") {
        shape = parse_shape();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "' in the header (expected descr, fortran_order, shape)");
      }
      skip_ws();
      if (peek() == ',') { ++i_; continue; }
      skip_ws();
      if (peek() == '}') { ++i_; break; }
      fail("expected ',' or '}' in the header dict");
    }
    if (!have_descr || !have_fortran || !have_shape)
      fail("the header dict must have the keys 'descr', 'fortran_order' and 'shape'");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(fmt::format("'{}': malformed .npy header at character {}: {}; header: {}", file_, i_, what, s_));
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(fmt::format("expected '{}'", c));
    ++i_;
  }
  std::string parse_string() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    ++i_;
    size_t end = s_.find(q, i_);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return out;
  }
  bool parse_bool() {
    if (s_.compare(i_, 4, "True") == 0) { i_ += 4; return true; }
    if (s_.compare(i_, 5, "False") == 0) { i_ += 5; return false; }
    fail("expected True or False");
  }
  std::vector<int64_t> parse_shape() {
    std::vector<int64_t> out;
    expect('(');
    while (true) {
      skip_ws();
      if (peek() == ')') { ++i_; break; }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a non-negative integer in 'shape'");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (int64_t{1} << 50)) fail("dimension too large in 'shape'");
        v = v * 10 + (s_[i_++] - '0');
      }
      out.push_back(v);
      skip_ws();
      if (peek() == ',') { ++i_; continue; }
      if (peek() == ')') { ++i_; break; }
      fail("expected ',' or ')' in 'shape'");
    }
    return out;
  }

  const std::string& s_;
  std::string file_;
  size_t i_ = 0;
};

std::string shape_repr(const std::vector<int64_t>& shape) {
  if (shape.empty()) return "()";
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + ")";
}

}  // namespace

void save_npy(const std::filesystem::path& path, const at::Tensor& tensor) {
  DAUG_CHECK(tensor.defined(), "save_npy('", path.string(), "'): the tensor is undefined");
  const DtypeInfo* d = dtype_for(tensor.scalar_type());
  DAUG_CHECK(d != nullptr, "save_npy('", path.string(), "'): unsupported dtype ", tensor.scalar_type(),
             "; supported: ", kSupported);
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", d->descr,
                                 shape_repr(shape));
  if (!shape.empty()) dict.append(21 - std::to_string(shape[0]).size(), ' ');
  // magic(6) + version(2) + length(2 or 4) + dict + padding + '\n' is a multiple of 64 (numpy's ARRAY_ALIGN).
  auto wrap = [&](int major) {
    const size_t prefix = 6 + 2 + (major == 1 ? 2 : 4);
    const size_t hlen = dict.size() + 1;
    const size_t pad = 64 - (prefix + hlen) % 64;  // numpy pads 64 when already aligned
    const size_t total = hlen + pad;
    std::string out = "\x93NUMPY";
    out += static_cast<char>(major);
    out += '\0';
    if (major == 1) {
      out += static_cast<char>(total & 0xff);
      out += static_cast<char>((total >> 8) & 0xff);
    } else {
      for (int k = 0; k < 4; ++k) out += static_cast<char>((total >> (8 * k)) & 0xff);
    }
    out += dict;
    out.append(pad, ' ');
    out += '\n';
    return out;
  };
  std::string out = wrap(1);
  if (out.size() - 10 > 65535) out = wrap(2);
  const size_t nbytes = static_cast<size_t>(t.numel()) * d->itemsize;
  const size_t header = out.size();
  out.resize(header + nbytes);
  if (nbytes) std::memcpy(&out[header], t.data_ptr(), nbytes);
  write_file_atomic(path, out);
}

namespace {

// The parsed header of a .npy file and where its payload starts.
struct Parsed {
  NpyInfo info;
  size_t data_offset = 0;
  size_t data_bytes = 0;
};

// Checks everything but reads only the header: `bytes` is the start of the file (at least the header when the
// file has one), `file_size` its full size.
Parsed parse_npy(const std::string& bytes, size_t file_size, const std::string& file) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    std::string first;
    for (size_t i = 0; i < bytes.size() && i < 6; ++i) first += fmt::format("{}{:02x}", i ? " " : "", (unsigned char)bytes[i]);
    throw DataError(
        fmt::format("'{}': not a .npy file: expected the magic \\x93NUMPY (93 4e 55 4d 50 59), but the file "
                    "starts with {} ({} bytes)",
                    file, first.empty() ? "nothing" : first, file_size));
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  const int minor = static_cast<unsigned char>(bytes[7]);
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    throw DataError(fmt::format("'{}': unsupported .npy format version {}.{} (supported: 1.0, 2.0, 3.0)", file, major,
                                minor));
  size_t prefix = major == 1 ? 10 : 12;
  if (bytes.size() < prefix)
    throw DataError(fmt::format("'{}': truncated .npy file: {} bytes, the header length field alone needs {}", file,
                                file_size, prefix));
  size_t hlen = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  } else {
    for (int k = 0; k < 4; ++k) hlen |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + k])) << (8 * k);
  }
  if (bytes.size() < prefix + hlen)
    throw DataError(
        fmt::format("'{}': truncated .npy header: it declares {} header bytes, but the file has only {} "
                    "after the length field",
                    file, hlen, file_size - prefix));
  const std::string header = bytes.substr(prefix, hlen);
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  HeaderParser(header, file).parse(descr, fortran, shape);
  if (fortran)
    throw DataError(fmt::format("'{}': Fortran-order arrays are not supported (fortran_order is True); save a "
                                "C-contiguous array (numpy.ascontiguousarray)",
                                file));
  if (!descr.empty() && descr[0] == '>' && descr.size() > 2 && descr.substr(1) != "u1" && descr.substr(1) != "b1")
    throw DataError(fmt::format("'{}': big-endian dtype '{}' is not supported; expected little-endian, one of: {}",
                                file, descr, kSupported));
  const DtypeInfo* d = dtype_for(descr);
  if (d == nullptr)
    throw DataError(fmt::format("'{}': unsupported dtype '{}'; supported: {}", file, descr, kSupported));
  // Overflow-checked: a forged shape must not wrap the byte count around to the payload size (fuzz/regressions/npy).
  uint64_t expected = d->itemsize;
  for (int64_t s : shape)
    if (__builtin_mul_overflow(expected, static_cast<uint64_t>(s), &expected))
      throw DataError(
          fmt::format("'{}': shape {} of {} has more elements than fit in memory", file, shape_repr(shape), descr));
  const size_t found = file_size - prefix - hlen;
  if (found != expected)
    throw DataError(fmt::format("'{}': {} .npy payload: shape {} of {} needs {} data bytes, but the file has {}", file,
                                found < expected ? "truncated" : "oversized", shape_repr(shape), descr, expected,
                                found));
  return {{shape, d->type}, prefix + hlen, expected};
}

void check_exists(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw DataError(fmt::format(".npy file '{}' does not exist", path.string()));
}

}  // namespace

NpyInfo read_npy_info(const std::filesystem::path& path) {
  const std::string file = path.string();
  check_exists(path);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(fmt::format("cannot open .npy file '{}' for reading", file));
  f.seekg(0, std::ios::end);
  const auto end = f.tellg();
  if (end < 0) throw DataError(fmt::format("cannot determine the size of .npy file '{}'", file));
  const auto size = static_cast<size_t>(end);
  f.seekg(0);
  // The fixed prefix first, then exactly the header it declares (at most 4 GiB by the format, far less in practice).
  std::string bytes(std::min<size_t>(size, 12), '\0');
  f.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (bytes.size() >= 10 && bytes.compare(0, 6, "\x93NUMPY") == 0) {
    const int major = static_cast<unsigned char>(bytes[6]);
    size_t hlen =
        static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    size_t prefix = 10;
    if (major != 1 && bytes.size() >= 12) {
      prefix = 12;
      hlen = 0;
      for (int k = 0; k < 4; ++k) hlen |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + k])) << (8 * k);
    }
    const size_t want = std::min(size, prefix + hlen);
    if (want > bytes.size()) {
      const size_t have = bytes.size();
      bytes.resize(want);
      f.seekg(static_cast<std::streamoff>(have));
      f.read(bytes.data() + have, static_cast<std::streamsize>(want - have));
    }
  }
  if (f.bad()) throw DataError(fmt::format("error while reading .npy file '{}'", file));
  return parse_npy(bytes, size, file).info;
}

at::Tensor load_npy(const std::filesystem::path& path) {
  const std::string file = path.string();
  check_exists(path);
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(fmt::format("cannot open .npy file '{}' for reading", file));
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const Parsed p = parse_npy(bytes, bytes.size(), file);
  at::Tensor out = at::empty(p.info.shape, at::TensorOptions().dtype(p.info.dtype));
  if (p.data_bytes) std::memcpy(out.data_ptr(), bytes.data() + p.data_offset, p.data_bytes);
  return out;
}

}  // namespace daug::data
