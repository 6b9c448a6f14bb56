// Strict torch.save (zip) reader; see daug/torch_zip.h. Layout: PyTorch's caffe2/serialize/inline_container.cc
// (stored zip records) and torch/serialization.py (_save: data.pkl with persistent ids
// ('storage', torch.<T>Storage, key, location, numel)); opcodes: Python's Lib/pickle.py.
#include <daug/error.h>
#include <daug/torch_zip.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

namespace daug {
namespace {

// ------------------------------------------------------------------------------------------------------ zip
struct Record {
  uint64_t offset = 0;  // of the data in the buffer
  uint64_t size = 0;    // stored bytes
  uint32_t method = 0;  // 0 = stored; torch.save never compresses, TorchScript archives deflate code/ records
};

class Zip {
 public:
  Zip(const uint8_t* data, size_t size, std::string source) : d_(data), n_(size), src_(std::move(source)) {}

  void parse() {
    if (n_ < 22) fail(fmt::format("{} bytes are too few for a zip archive (end record needs 22)", n_));
    // End of central directory: the last "PK\5\6" within the final 22 + 65535 (comment) bytes.
    uint64_t eocd = n_;
    const uint64_t lowest = n_ - 22 > 65535 ? n_ - 22 - 65535 : 0;
    for (uint64_t p = n_ - 22 + 1; p-- > lowest;)
      if (u32(p) == 0x06054b50u) {
        eocd = p;
        break;
      }
    if (eocd == n_) fail("no zip end-of-central-directory record (truncated file?)");
    uint64_t entries = u16(eocd + 10), cd_size = u32(eocd + 12), cd_offset = u32(eocd + 16);
    if (entries == 0xffff || cd_size == 0xffffffffu || cd_offset == 0xffffffffu) {
      // Zip64: a locator just before the end record points at the zip64 end record.
      if (eocd < 20 || u32(eocd - 20) != 0x07064b50u) fail("zip64 archive without a zip64 end-of-directory locator");
      const uint64_t z = u64(eocd - 20 + 8);
      if (u32(z) != 0x06064b50u) fail(fmt::format("no zip64 end-of-directory record at byte {}", z));
      entries = u64(z + 32);
      cd_size = u64(z + 40);
      cd_offset = u64(z + 48);
    }
    if (cd_offset > n_ || cd_size > n_ - cd_offset)
      fail(fmt::format("central directory [{}, +{}) lies outside the file ({} bytes; truncated?)", cd_offset, cd_size,
                       n_));
    if (entries > cd_size / 46)
      fail(fmt::format("central directory of {} bytes cannot hold {} entries", cd_size, entries));
    uint64_t p = cd_offset;
    for (uint64_t i = 0; i < entries; ++i) {
      if (u32(p) != 0x02014b50u) fail(fmt::format("central directory entry {} at byte {} has a bad signature", i, p));
      const uint32_t flags = u16(p + 8), method = u16(p + 10), crc = u32(p + 16);
      uint64_t comp = u32(p + 20), size = u32(p + 24), local = u32(p + 42);
      const uint64_t name_len = u16(p + 28), extra_len = u16(p + 30), comment_len = u16(p + 32);
      const std::string name = str(p + 46, name_len);
      uint64_t e = p + 46 + name_len;
      const uint64_t extra_end = e + extra_len;
      while (e + 4 <= extra_end) {  // zip64 extended information: the fields that were 0xffffffff, in order
        const uint32_t id = u16(e), len = u16(e + 2);
        if (id == 0x0001) {
          uint64_t q = e + 4;
          if (size == 0xffffffffu) size = u64(q), q += 8;
          if (comp == 0xffffffffu) comp = u64(q), q += 8;
          if (local == 0xffffffffu) local = u64(q), q += 8;
          if (q > e + 4 + len) fail(fmt::format("record '{}': zip64 extra field too short", name));
        }
        e += 4 + len;
      }
      if (flags & 1u) fail(fmt::format("record '{}' is encrypted", name));
      if (method == 0 && comp != size)
        fail(fmt::format("record '{}': stored size {} differs from its size {}", name, comp, size));
      if (u32(local) != 0x04034b50u) fail(fmt::format("record '{}': no local header at byte {}", name, local));
      const uint64_t data = local + 30 + u16(local + 26) + u16(local + 28);
      if (data > n_ || comp > n_ - data)
        fail(fmt::format("record '{}' [{}, +{}) extends past the end of the file ({} bytes; truncated?)", name, data,
                         comp, n_));
      if (method == 0) {  // compressed records are never read, so only stored ones are checked
        const uint32_t actual = static_cast<uint32_t>(crc32_z(crc32_z(0L, Z_NULL, 0), d_ + data, comp));
        if (actual != crc)
          fail(fmt::format("record '{}' fails its CRC-32 check (stored {:08x}, computed {:08x}): corrupted file", name,
                           crc, actual));
      }
      records_[name] = Record{data, comp, method};
      p = extra_end + comment_len;
      if (p > cd_offset + cd_size) fail(fmt::format("central directory entry '{}' overruns the directory", name));
    }
  }

  const std::map<std::string, Record>& records() const { return records_; }
  const uint8_t* at(const Record& r) const { return d_ + r.offset; }
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(src_ + ": not a readable zip archive: " + what);
  }

 private:
  void need(uint64_t p, uint64_t k) const {
    if (p > n_ || k > n_ - p) fail(fmt::format("needs bytes [{}, {}) but the file has {} (truncated?)", p, p + k, n_));
  }
  uint64_t le(uint64_t p, int k) const {
    need(p, static_cast<uint64_t>(k));
    uint64_t v = 0;
    for (int i = 0; i < k; ++i) v |= static_cast<uint64_t>(d_[p + static_cast<uint64_t>(i)]) << (8 * i);
    return v;
  }
  uint32_t u16(uint64_t p) const { return static_cast<uint32_t>(le(p, 2)); }
  uint32_t u32(uint64_t p) const { return static_cast<uint32_t>(le(p, 4)); }
  uint64_t u64(uint64_t p) const { return le(p, 8); }
  std::string str(uint64_t p, uint64_t k) const {
    need(p, k);
    return std::string(reinterpret_cast<const char*>(d_ + p), k);
  }

  const uint8_t* d_;
  uint64_t n_;
  std::string src_;
  std::map<std::string, Record> records_;
};

// --------------------------------------------------------------------------------------------------- pickle
enum class Kind { none, boolean, integer, floating, string, bytes, tuple, list, dict, tensor, storage, global, object };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::none:
      return "None";
    case Kind::boolean:
      return "bool";
    case Kind::integer:
      return "int";
    case Kind::floating:
      return "float";
    case Kind::string:
      return "str";
    case Kind::bytes:
      return "bytes";
    case Kind::tuple:
      return "tuple";
    case Kind::list:
      return "list";
    case Kind::dict:
      return "dict";
    case Kind::tensor:
      return "tensor";
    case Kind::storage:
      return "storage";
    case Kind::global:
      return "class or function";
    case Kind::object:
      return "object";
  }
  return "?";
}

using Id = uint32_t;  // index into the arena: values never own each other, so cycles cannot leak

struct Value {
  Kind kind = Kind::none;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                           // str, bytes, global / object class name
  std::vector<Id> items;                   // tuple, list
  std::vector<std::pair<Id, Id>> entries;  // dict
  at::Tensor t;                            // tensor, storage (1-D)
  std::string location;                    // storage
};

struct StorageType {
  const char* name;
  at::ScalarType type;
};
constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", at::kFloat},       {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
    {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
    {"torch.ShortStorage", at::kShort},       {"torch.CharStorage", at::kChar},     {"torch.ByteStorage", at::kByte},
    {"torch.BoolStorage", at::kBool},         {"torch.UntypedStorage", at::kByte}};

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const Zip& zip, std::string prefix, std::string source,
            uint64_t max_tensor_bytes)
      : d_(data), n_(size), zip_(zip), prefix_(std::move(prefix)), src_(std::move(source)), budget_(max_tensor_bytes) {}

  Id run() {
    for (;;) {
      op_at_ = pos_;
      const uint8_t op = byte();
      switch (op) {
        case 0x80: {  // PROTO
          const uint8_t v = byte();
          if (v > 5) fail(fmt::format("pickle protocol {} is newer than 5", v));
          break;
        }
        case 0x95:
          skip(8);
          break;     // FRAME (length only; frames are not needed to parse)
        case '.': {  // STOP
          if (stack_.size() != 1 || !marks_.empty())
            fail(fmt::format("STOP with {} values on the stack (expected exactly 1)", stack_.size()));
          return stack_.back();
        }
        case 'N':
          push(make(Kind::none));
          break;
        case 0x88:
          push(boolean(true));
          break;
        case 0x89:
          push(boolean(false));
          break;
        case 'J':
          push(integer(static_cast<int32_t>(le(4))));
          break;  // BININT (signed)
        case 'K':
          push(integer(static_cast<int64_t>(le(1))));
          break;
        case 'M':
          push(integer(static_cast<int64_t>(le(2))));
          break;
        case 0x8a:
          push(long_int(le(1)));
          break;  // LONG1
        case 0x8b:
          push(long_int(le(4)));
          break;     // LONG4
        case 'G': {  // BINFLOAT: big-endian IEEE double
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | byte();
          double v;
          std::memcpy(&v, &bits, 8);
          Id id = make(Kind::floating);
          arena_[id].f = v;
          push(id);
          break;
        }
        case 'X':
          push(text(Kind::string, le(4)));
          break;  // BINUNICODE
        case 0x8c:
          push(text(Kind::string, le(1)));
          break;  // SHORT_BINUNICODE
        case 0x8d:
          push(text(Kind::string, le(8)));
          break;  // BINUNICODE8
        case 'T':
          push(text(Kind::string, le(4)));
          break;  // BINSTRING (Python 2 str)
        case 'U':
          push(text(Kind::string, le(1)));
          break;  // SHORT_BINSTRING
        case 'B':
          push(text(Kind::bytes, le(4)));
          break;  // BINBYTES
        case 'C':
          push(text(Kind::bytes, le(1)));
          break;  // SHORT_BINBYTES
        case 0x8e:
          push(text(Kind::bytes, le(8)));
          break;  // BINBYTES8
        case 0x96:
          push(text(Kind::bytes, le(8)));
          break;  // BYTEARRAY8
        case '}':
          push(make(Kind::dict));
          break;
        case ']':
          push(make(Kind::list));
          break;
        case ')':
          push(make(Kind::tuple));
          break;
        case 0x8f:
          push(make(Kind::list));
          break;  // EMPTY_SET (kept as a list)
        case '(':
          marks_.push_back(stack_.size());
          break;
        case 't': {
          Id id = make(Kind::tuple);
          arena_[id].items = pop_mark();
          push(id);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          const size_t k = static_cast<size_t>(op - 0x84);
          need_stack(k);
          Id id = make(Kind::tuple);
          arena_[id].items.assign(stack_.end() - static_cast<std::ptrdiff_t>(k), stack_.end());
          stack_.resize(stack_.size() - k);
          push(id);
          break;
        }
        case 'l': {  // LIST (from mark)
          Id id = make(Kind::list);
          arena_[id].items = pop_mark();
          push(id);
          break;
        }
        case 'd': {  // DICT (from mark)
          auto items = pop_mark();
          Id id = make(Kind::dict);
          set_items(id, items);
          push(id);
          break;
        }
        case 0x91: {  // FROZENSET (from mark, kept as a list)
          Id id = make(Kind::list);
          arena_[id].items = pop_mark();
          push(id);
          break;
        }
        case 'a': {  // APPEND
          need_stack(2);
          Id v = pop();
          append(top(), {v});
          break;
        }
        case 'e':
        case 0x90: {  // APPENDS, ADDITEMS
          auto items = pop_mark();
          need_stack(1);
          append(top(), items);
          break;
        }
        case 's': {  // SETITEM
          need_stack(3);
          Id v = pop(), k = pop();
          set_items(top(), {k, v});
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          need_stack(1);
          set_items(top(), items);
          break;
        }
        case 'q':
          memo_put(le(1));
          break;  // BINPUT
        case 'r':
          memo_put(le(4));
          break;  // LONG_BINPUT
        case 0x94:
          memo_put(memo_.size());
          break;  // MEMOIZE
        case 'h':
          push(memo_get(le(1)));
          break;  // BINGET
        case 'j':
          push(memo_get(le(4)));
          break;  // LONG_BINGET
        case '0':
          pop();
          break;  // POP
        case '1':
          pop_mark();
          break;  // POP_MARK
        case '2':
          need_stack(1), push(top());
          break;     // DUP
        case 'c': {  // GLOBAL "module\nname\n"
          std::string module = line(), name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          need_stack(2);
          Id name = pop(), module = pop();
          if (arena_[name].kind != Kind::string || arena_[module].kind != Kind::string)
            fail("STACK_GLOBAL needs two strings");
          push(global(arena_[module].s + "." + arena_[name].s));
          break;
        }
        case 'R': {  // REDUCE
          need_stack(2);
          Id args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 0x81: {  // NEWOBJ
          need_stack(2);
          Id args = pop(), cls = pop();
          push(reduce(cls, args));
          break;
        }
        case 0x92: {  // NEWOBJ_EX
          need_stack(3);
          pop();
          Id args = pop(), cls = pop();
          push(reduce(cls, args));
          break;
        }
        case 'b': {  // BUILD: set state; an OrderedDict's `_metadata`, an object's __dict__: data we do not need
          need_stack(2);
          pop();
          break;
        }
        case 'Q': {  // BINPERSID
          need_stack(1);
          push(persistent_load(pop()));
          break;
        }
        default:
          fail(fmt::format("unsupported pickle opcode 0x{:02x} (torch.save writes protocol 2 data only)", op));
      }
    }
  }

  const Value& operator[](Id id) const { return arena_[id]; }
  std::set<std::string> locations() const {
    std::set<std::string> out;
    for (const auto& [key, id] : storages_) out.insert(arena_[id].location);
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(fmt::format("{}: {}data.pkl byte {}: {}", src_, prefix_, op_at_, what));
  }
  uint8_t byte() {
    if (pos_ >= n_) fail("the pickle ends without a STOP opcode (truncated?)");
    return d_[pos_++];
  }
  void skip(uint64_t k) {
    if (k > n_ - pos_) fail(fmt::format("needs {} more bytes, but only {} remain", k, n_ - pos_));
    pos_ += k;
  }
  uint64_t le(int k) {
    if (static_cast<uint64_t>(k) > n_ - pos_)
      fail(fmt::format("needs {} more bytes, but only {} remain", k, n_ - pos_));
    uint64_t v = 0;
    for (int i = 0; i < k; ++i) v |= static_cast<uint64_t>(d_[pos_ + static_cast<uint64_t>(i)]) << (8 * i);
    pos_ += static_cast<uint64_t>(k);
    return v;
  }
  std::string line() {
    const uint8_t* end = static_cast<const uint8_t*>(std::memchr(d_ + pos_, '\n', n_ - pos_));
    if (!end) fail("GLOBAL name without a newline");
    std::string s(reinterpret_cast<const char*>(d_ + pos_), static_cast<size_t>(end - (d_ + pos_)));
    pos_ = static_cast<uint64_t>(end - d_) + 1;
    return s;
  }

  Id make(Kind k) {
    if (arena_.size() >= (1u << 26)) fail("more than 2^26 pickle values");
    arena_.emplace_back();
    arena_.back().kind = k;
    return static_cast<Id>(arena_.size() - 1);
  }
  Id boolean(bool b) {
    Id id = make(Kind::boolean);
    arena_[id].b = b;
    return id;
  }
  Id integer(int64_t v) {
    Id id = make(Kind::integer);
    arena_[id].i = v;
    return id;
  }
  Id long_int(uint64_t nbytes) {  // little-endian two's complement; only values that fit int64 are kept exact
    if (nbytes > n_ - pos_) fail(fmt::format("LONG of {} bytes, but only {} remain", nbytes, n_ - pos_));
    if (nbytes > 8) {
      pos_ += nbytes;
      Id id = make(Kind::floating);  // a huge Python int: not a tensor argument, kept approximately
      arena_[id].f = std::numeric_limits<double>::infinity();
      return id;
    }
    uint64_t v = 0;
    for (uint64_t k = 0; k < nbytes; ++k) v |= static_cast<uint64_t>(d_[pos_ + k]) << (8 * k);
    if (nbytes > 0 && nbytes < 8 && (d_[pos_ + nbytes - 1] & 0x80)) v |= ~uint64_t{0} << (8 * nbytes);
    pos_ += nbytes;
    return integer(static_cast<int64_t>(v));
  }
  Id text(Kind k, uint64_t len) {
    if (len > n_ - pos_) fail(fmt::format("string of {} bytes, but only {} remain", len, n_ - pos_));
    Id id = make(k);
    arena_[id].s.assign(reinterpret_cast<const char*>(d_ + pos_), len);
    pos_ += len;
    return id;
  }
  Id global(const std::string& name) {
    Id id = make(Kind::global);
    arena_[id].s = name;
    return id;
  }

  void push(Id id) {
    if (stack_.size() >= (1u << 24)) fail("pickle stack deeper than 2^24");
    stack_.push_back(id);
  }
  void need_stack(size_t k) {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + k) fail(fmt::format("opcode needs {} value(s) on the stack", k));
  }
  Id pop() {
    need_stack(1);
    Id id = stack_.back();
    stack_.pop_back();
    return id;
  }
  Id top() const { return stack_.back(); }
  std::vector<Id> pop_mark() {
    if (marks_.empty()) fail("opcode needs a MARK, but there is none");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Id> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void memo_put(uint64_t key) {
    need_stack(1);
    if (key > (1u << 26)) fail(fmt::format("memo key {} is too large", key));
    memo_[key] = top();
  }
  Id memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail(fmt::format("memo key {} was never stored", key));
    return it->second;
  }
  void append(Id list, const std::vector<Id>& items) {
    if (arena_[list].kind == Kind::object) return;  // e.g. a set subclass: not needed
    if (arena_[list].kind != Kind::list) fail(fmt::format("APPEND to a {}, not a list", kind_name(arena_[list].kind)));
    auto& v = arena_[list].items;
    v.insert(v.end(), items.begin(), items.end());
  }
  void set_items(Id dict, const std::vector<Id>& kv) {
    if (kv.size() % 2) fail("SETITEMS with an odd number of values");
    if (arena_[dict].kind == Kind::object) return;
    if (arena_[dict].kind != Kind::dict) fail(fmt::format("SETITEM on a {}, not a dict", kind_name(arena_[dict].kind)));
    for (size_t k = 0; k < kv.size(); k += 2) arena_[dict].entries.emplace_back(kv[k], kv[k + 1]);
  }

  const Value& arg(const Value& args, size_t k, Kind kind, const char* what) const {
    if (k >= args.items.size()) fail(fmt::format("{}: missing argument {}", what, k));
    const Value& v = arena_[args.items[k]];
    if (v.kind != kind)
      fail(fmt::format("{}: argument {} must be a {}, but is a {}", what, k, kind_name(kind), kind_name(v.kind)));
    return v;
  }
  std::vector<int64_t> ints(const Value& tuple, const char* what) const {
    std::vector<int64_t> out;
    for (Id id : tuple.items) {
      if (arena_[id].kind != Kind::integer || arena_[id].i < 0)
        fail(fmt::format("{}: sizes and strides must be non-negative ints", what));
      out.push_back(arena_[id].i);
    }
    return out;
  }

  Id reduce(Id fn_id, Id args_id) {
    const Value& fn = arena_[fn_id];
    const Value& args = arena_[args_id];
    if (fn.kind != Kind::global) fail(fmt::format("REDUCE on a {}, not a class or function", kind_name(fn.kind)));
    if (args.kind != Kind::tuple) fail(fmt::format("REDUCE of {} with a {} of arguments", fn.s, kind_name(args.kind)));
    const std::string name = fn.s;  // a copy: make() below adds values
    if (name == "collections.OrderedDict" || name == "builtins.dict") {
      Id id = make(Kind::dict);
      if (!arena_[args_id].items.empty()) {  // OrderedDict([(k, v), ...])
        const Value& pairs = arena_[arena_[args_id].items[0]];
        if (pairs.kind != Kind::list && pairs.kind != Kind::tuple) fail(name + ": expected a list of pairs");
        std::vector<Id> kv;
        for (Id p : pairs.items) {
          if (arena_[p].items.size() != 2) fail(name + ": expected (key, value) pairs");
          kv.push_back(arena_[p].items[0]);
          kv.push_back(arena_[p].items[1]);
        }
        set_items(id, kv);
      }
      return id;
    }
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") return rebuild(args_id);
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      arg(args, 0, Kind::tensor, name.c_str());
      return args.items[0];
    }
    // LibTorch's pickler (torch::jit::pickle_save) tags containers with their type and builds typed lists.
    if (name == "torch.jit._pickle.restore_type_tag" || name == "torch.jit._pickle.build_intlist" ||
        name == "torch.jit._pickle.build_tensorlist" || name == "torch.jit._pickle.build_doublelist" ||
        name == "torch.jit._pickle.build_boollist") {
      if (args.items.empty()) fail(name + ": missing argument");
      return args.items[0];
    }
    if (name == "torch._tensor._rebuild_from_type_v2") {  // (func, type, func_args, state): a Tensor subclass
      if (args.items.size() < 3) fail(name + ": expected (func, type, args, state)");
      if (++nesting_ > 16) fail(name + ": nested more than 16 deep");
      const Id id = reduce(args.items[0], args.items[2]);
      --nesting_;
      return id;
    }
    if (name.rfind("torch._utils._rebuild_qtensor", 0) == 0 || name.rfind("torch._utils._rebuild_sparse", 0) == 0 ||
        name.rfind("torch._utils._rebuild_", 0) == 0)
      fail(fmt::format("{}: quantized, sparse and other special tensors are not supported", name));
    // Any other class (argparse.Namespace, numpy scalars, torch.device, ...): kept opaque, never called.
    Id id = make(Kind::object);
    arena_[id].s = name;
    return id;
  }

  Id rebuild(Id args_id) {
    const char* what = "torch._utils._rebuild_tensor_v2";
    const Value& args = arena_[args_id];
    const Value& storage = arg(args, 0, Kind::storage, what);
    const int64_t offset = arg(args, 1, Kind::integer, what).i;
    const std::vector<int64_t> size = ints(arg(args, 2, Kind::tuple, what), what);
    const std::vector<int64_t> stride = ints(arg(args, 3, Kind::tuple, what), what);
    if (size.size() != stride.size())
      fail(fmt::format("{}: {} sizes but {} strides", what, size.size(), stride.size()));
    const int64_t numel_storage = storage.t.numel();
    if (offset < 0) fail(fmt::format("{}: negative storage offset {}", what, offset));
    // The largest element index the view touches must lie inside the storage (overflow-checked).
    uint64_t numel = 1, last = static_cast<uint64_t>(offset);
    bool empty = false;
    for (size_t k = 0; k < size.size(); ++k) {
      if (size[k] == 0) empty = true;
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(size[k]), &numel))
        fail(fmt::format("{}: the number of elements overflows", what));
    }
    if (!empty) {
      for (size_t k = 0; k < size.size(); ++k) {
        uint64_t reach = 0;
        if (__builtin_mul_overflow(static_cast<uint64_t>(size[k] - 1), static_cast<uint64_t>(stride[k]), &reach) ||
            __builtin_add_overflow(last, reach, &last))
          fail(fmt::format("{}: the view's extent overflows", what));
      }
      if (last >= static_cast<uint64_t>(numel_storage))
        fail(
            fmt::format("{}: a view of size [{}] stride [{}] at offset {} reaches element {}, but its storage holds {}",
                        what, fmt::join(size, ", "), fmt::join(stride, ", "), offset, last, numel_storage));
    }
    const uint64_t bytes = numel * storage.t.element_size();
    if (bytes > budget_)
      fail(fmt::format("{}: tensor of {} elements exceeds the limit on the bytes a file of this size may expand to",
                       what, numel));
    budget_ -= bytes;
    Id id = make(Kind::tensor);
    arena_[id].t = empty ? at::empty(size, storage.t.options()) : storage.t.as_strided(size, stride, offset);
    return id;
  }

  Id persistent_load(Id pid_id) {
    const Value& pid = arena_[pid_id];
    const char* what = "persistent id";
    if (pid.kind != Kind::tuple || pid.items.empty() || arena_[pid.items[0]].kind != Kind::string ||
        arena_[pid.items[0]].s != "storage")
      fail("a persistent id must be a tuple ('storage', type, key, location, numel)");
    const Value& type = arg(pid, 1, Kind::global, what);
    const std::string key = arg(pid, 2, Kind::string, what).s;
    const std::string location = arg(pid, 3, Kind::string, what).s;
    const int64_t numel = arg(pid, 4, Kind::integer, what).i;
    at::ScalarType dtype = at::kFloat;
    bool known = false;
    for (const auto& st : kStorageTypes)
      if (type.s == st.name) dtype = st.type, known = true;
    if (!known) fail(fmt::format("unsupported storage type {}", type.s));
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const std::string record = prefix_ + "data/" + key;
    auto it = zip_.records().find(record);
    if (it == zip_.records().end()) fail(fmt::format("storage '{}' has no zip record '{}'", key, record));
    if (it->second.method != 0)
      fail(fmt::format("record '{}' is compressed (method {}); torch.save stores records uncompressed", record,
                       it->second.method));
    const uint64_t elem = c10::elementSize(dtype);
    if (numel < 0 || it->second.size / elem != static_cast<uint64_t>(numel) || it->second.size % elem != 0)
      fail(fmt::format("storage '{}' ({}, {} elements of {} bytes) needs {} bytes, but record '{}' holds {}", key,
                       type.s, numel, elem, static_cast<uint64_t>(numel < 0 ? 0 : numel) * elem, record,
                       it->second.size));
    at::Tensor t = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (numel > 0) std::memcpy(t.data_ptr(), zip_.at(it->second), it->second.size);
    Id id = make(Kind::storage);
    arena_[id].t = t;
    arena_[id].location = location;
    storages_[key] = id;
    return id;
  }

  const uint8_t* d_;
  uint64_t n_;
  uint64_t pos_ = 0, op_at_ = 0;
  const Zip& zip_;
  std::string prefix_, src_;
  uint64_t budget_;
  int nesting_ = 0;
  std::deque<Value> arena_;  // a deque: references stay valid while values are added
  std::vector<Id> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Id> memo_;
  std::unordered_map<std::string, Id> storages_;
};

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// A dict whose values are all tensors, with string keys.
bool is_state_dict(const Unpickler& u, const Value& v) {
  if (v.kind != Kind::dict) return false;
  for (const auto& [k, val] : v.entries)
    if (u[k].kind != Kind::string || u[val].kind != Kind::tensor) return false;
  return true;
}

std::string describe_keys(const Unpickler& u, const Value& dict) {
  std::string out;
  size_t shown = 0;
  for (const auto& [k, v] : dict.entries) {
    if (shown == 8) {
      out += fmt::format(", ... ({} in all)", dict.entries.size());
      break;
    }
    out += fmt::format("{}'{}': {}", shown ? ", " : "", u[k].kind == Kind::string ? u[k].s : "?", kind_name(u[v].kind));
    ++shown;
  }
  return out;
}

}  // namespace

bool is_torchscript_zip(const uint8_t* data, size_t size) {
  try {
    Zip zip(data, size, "");
    zip.parse();
    for (const auto& [name, r] : zip.records()) {
      const auto slash = name.find('/');
      const std::string rest = slash == std::string::npos ? name : name.substr(slash + 1);
      if (rest == "constants.pkl" || starts_with(rest, "code/")) return true;
    }
  } catch (const DataError&) {
  }
  return false;
}

TorchStateDict parse_torch_zip(const uint8_t* data, size_t size, const std::string& source) {
  if (size < 4 || std::memcmp(data, "PK\3\4", 4) != 0) {
    // torch.save before PyTorch 1.6 (or with _use_new_zipfile_serialization=False) starts with a pickled magic
    // number: PROTO 2, LONG1 of 10 bytes.
    if (size >= 3 && data[0] == 0x80 && data[1] == 0x02 && data[2] == 0x8a)
      throw DataError(source +
                      ": legacy (pre-1.6, non-zip) torch.save format, which is not supported; load it in "
                      "Python and save it again with torch.save(obj, path) (PyTorch >= 1.6 writes a zip)");
    throw DataError(source + ": not a torch.save zip archive (expected the zip signature 'PK\\x03\\x04' at byte 0)");
  }
  Zip zip(data, size, source);
  zip.parse();
  std::string prefix;
  bool found = false;
  for (const auto& [name, r] : zip.records()) {
    if (name == "data.pkl" ||
        (name.size() > 9 && name.compare(name.size() - 9, 9, "/data.pkl") == 0 && name.find('/') == name.size() - 9)) {
      if (found) throw DataError(source + ": the archive holds more than one top-level data.pkl");
      prefix = name.substr(0, name.size() - 8);
      found = true;
    }
  }
  if (!found) {
    if (is_torchscript_zip(data, size))
      throw DataError(source + ": a TorchScript archive (torch.jit.save), not a torch.save'd state dict");
    throw DataError(source + ": zip archive without '<archive>/data.pkl': not written by torch.save");
  }
  if (auto bo = zip.records().find(prefix + "byteorder"); bo != zip.records().end()) {
    const std::string order(reinterpret_cast<const char*>(zip.at(bo->second)), bo->second.size);
    if (bo->second.method != 0 || order != "little")
      throw DataError(fmt::format("{}: record '{}byteorder' says '{}'; only little-endian files are supported", source,
                                  prefix, order));
  }
  const Record& pkl = zip.records().at(prefix + "data.pkl");
  if (pkl.method != 0)
    throw DataError(
        fmt::format("{}: record '{}data.pkl' is compressed (method {}); torch.save stores records "
                    "uncompressed",
                    source, prefix, pkl.method));
  // A view may repeat its storage's elements (stride 0 or overlapping windows); cap what a file may expand to.
  const uint64_t budget = std::max<uint64_t>(64ull << 20, 64ull * size);
  Unpickler u(zip.at(pkl), pkl.size, zip, prefix, source, budget);
  const Value* v = &u[u.run()];

  TorchStateDict out;
  std::string path;
  for (int depth = 0; depth < 3 && !is_state_dict(u, *v); ++depth) {
    if (v->kind != Kind::dict) break;
    const Value* next = nullptr;
    for (const char* key : {"state_dict", "model_state_dict", "model", "module"}) {
      for (const auto& [k, val] : v->entries)
        if (u[k].kind == Kind::string && u[k].s == key && u[val].kind == Kind::dict) {
          next = &u[val];
          path += (path.empty() ? "" : ".") + std::string(key);
          break;
        }
      if (next) break;
    }
    if (!next) break;
    v = next;
  }
  if (!is_state_dict(u, *v)) {
    if (v->kind != Kind::dict)
      throw DataError(fmt::format("{}: {}holds a {}, but a state dict (a dict of name -> tensor) was expected", source,
                                  path.empty() ? "" : "entry '" + path + "' ", kind_name(v->kind)));
    for (const auto& [k, val] : v->entries)
      if (u[k].kind == Kind::string && u[val].kind != Kind::tensor && !path.empty())
        throw DataError(fmt::format("{}: state dict '{}': entry '{}' is a {}, but every entry must be a tensor", source,
                                    path, u[k].s, kind_name(u[val].kind)));
    throw DataError(
        fmt::format("{}: holds a dict that is neither a state dict (name -> tensor) nor a checkpoint with "
                    "a 'state_dict', 'model_state_dict', 'model' or 'module' entry; its entries: {}",
                    source, describe_keys(u, *v)));
  }
  out.container = path;
  std::unordered_map<std::string, size_t> index;
  for (const auto& [k, val] : v->entries) {
    const std::string& name = u[k].s;
    at::Tensor t = u[val].t.contiguous();
    if (auto it = index.find(name); it != index.end()) {
      out.tensors[it->second].second = t;  // a repeated key: the last value wins, as in Python
    } else {
      index[name] = out.tensors.size();
      out.tensors.emplace_back(name, t);
    }
  }
  for (const auto& l : u.locations()) out.locations.push_back(l);
  for (const char* p : {"module.", "_orig_mod."}) {
    const bool all = !out.tensors.empty() && std::all_of(out.tensors.begin(), out.tensors.end(),
                                                         [&](const auto& e) { return starts_with(e.first, p); });
    if (!all) continue;
    for (auto& e : out.tensors) e.first = e.first.substr(std::strlen(p));
    out.stripped_prefix += p;
  }
  return out;
}

TorchStateDict load_torch_zip(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw DataError(fmt::format("{}: cannot open the file", path.string()));
  std::vector<uint8_t> bytes(static_cast<size_t>(f.tellg()));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f && !bytes.empty()) throw DataError(fmt::format("{}: cannot read the file", path.string()));
  return parse_torch_zip(bytes.data(), bytes.size(), path.string());
}

}  // namespace daug
