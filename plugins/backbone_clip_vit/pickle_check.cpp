// Structural check of torch.save / TorchScript pickles; see pickle_check.h.
#include "pickle_check.h"

#include <daug/error.h>

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace daug::plugins::clip {

namespace {

constexpr int kMaxDepth = 1000;  // IValue destructors recurse: a deeper nesting could overflow the C++ stack

class PickleChecker {
 public:
  PickleChecker(const char* p, size_t n, const std::string& where) : p_(p), n_(n), where_(where) {}

  void run() {
    if (n_ < 2 || static_cast<uint8_t>(p_[0]) != 0x80 || static_cast<uint8_t>(p_[1]) != 2)
      fail(0, "expected a protocol-2 pickle (bytes 80 02)");
    i_ = 2;
    while (true) {
      if (i_ >= n_) fail(i_, "the pickle ends before its STOP opcode");
      op_at_ = i_;
      const auto op = static_cast<uint8_t>(p_[i_++]);
      switch (op) {
        case '.':  // STOP
          if (!frames_.empty() || stack_.size() != 1)
            fail(op_at_, fmt::format("STOP with {} values and {} open MARKs; expected 1 value, no MARK", stack_.size(),
                                     frames_.size()));
          return;
        case '(':  // MARK
          frames_.push_back(stack_.size());
          break;
        case '0':  // POP
          pop(1);
          break;
        case '1':  // POP_MARK
          pop_mark();
          break;
        case 'N':   // NONE
        case 0x88:  // NEWTRUE
        case 0x89:  // NEWFALSE
          push(0);
          break;
        case 'J':  // BININT
          skip(4);
          push(0);
          break;
        case 'K':  // BININT1
          skip(1);
          push(0);
          break;
        case 'M':  // BININT2
          skip(2);
          push(0);
          break;
        case 'G':  // BINFLOAT
          skip(8);
          push(0);
          break;
        case 0x8a:  // LONG1
          skip(u8());
          push(0);
          break;
        case 'X':  // BINUNICODE
          skip(u32());
          push(0);
          break;
        case 'U':  // SHORT_BINSTRING
          skip(u8());
          push(0);
          break;
        case 'c':  // GLOBAL module\nname\n
          line();
          line();
          push(0);
          break;
        case ')':
        case ']':
        case '}':  // EMPTY_TUPLE, EMPTY_LIST, EMPTY_DICT
          push(1);
          break;
        case 't':
        case 'l':  // TUPLE, LIST
          push(1 + pop_mark());
          break;
        case 'd':  // DICT
          push(1 + pop_mark(true));
          break;
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          const int k = op - 0x84;
          push(1 + pop(static_cast<size_t>(k)));
          break;
        }
        case 'a': {  // APPEND: list item -> list
          need(2);
          const int item = pop(1);
          grow_top(item);
          break;
        }
        case 'e': {  // APPENDS: list MARK items -> list
          const int items = pop_mark();
          grow_top(items);
          break;
        }
        case 's': {  // SETITEM: dict key value -> dict
          need(3);
          const int kv = pop(2);
          grow_top(kv);
          break;
        }
        case 'u': {  // SETITEMS: dict MARK k v ... -> dict
          const int kv = pop_mark(true);
          grow_top(kv);
          break;
        }
        case 'R':
        case 'b':
        case 0x81: {  // REDUCE, BUILD, NEWOBJ: x y -> z
          need(2);
          const int arg = pop(1);
          grow_top(arg);
          break;
        }
        case 'Q':  // BINPERSID: pid -> obj
          need(1);
          break;
        case 'q':
          memo_put(u8());
          break;  // BINPUT
        case 'r':
          memo_put(u32());
          break;  // LONG_BINPUT
        case 'h':
          memo_get(u8());
          break;  // BINGET
        case 'j':
          memo_get(u32());
          break;  // LONG_BINGET
        default:
          fail(op_at_, fmt::format("opcode 0x{:02x} is not one a torch.save pickle uses", op));
      }
    }
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw DataError(fmt::format("{}: malformed pickle at byte {}: {}", where_, at, what));
  }
  void need_bytes(uint64_t k) const {
    if (k > n_ - i_)
      fail(op_at_, fmt::format("opcode 0x{:02x} needs {} more bytes, but the pickle has {}",
                               static_cast<uint8_t>(p_[op_at_]), k, n_ - i_));
  }
  void skip(uint64_t k) {
    need_bytes(k);
    i_ += k;
  }
  uint64_t u8() {
    need_bytes(1);
    return static_cast<uint8_t>(p_[i_++]);
  }
  uint64_t u32() {
    need_bytes(4);
    uint64_t v = 0;
    for (int k = 0; k < 4; ++k) v |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i_ + k])) << (8 * k);
    i_ += 4;
    return v;
  }
  void line() {
    const void* nl = std::memchr(p_ + i_, '\n', n_ - i_);
    if (nl == nullptr) fail(op_at_, "GLOBAL without a line break after its name");
    i_ = static_cast<size_t>(static_cast<const char*>(nl) - p_) + 1;
  }
  size_t frame_base() const { return frames_.empty() ? 0 : frames_.back(); }
  void need(size_t k) const {
    if (stack_.size() - frame_base() < k)
      fail(op_at_, fmt::format("opcode 0x{:02x} needs {} value(s) on the stack above the last MARK, but there are {}",
                               static_cast<uint8_t>(p_[op_at_]), k, stack_.size() - frame_base()));
  }
  void push(int depth) {
    if (depth > kMaxDepth) fail(op_at_, fmt::format("containers nested deeper than {}", kMaxDepth));
    stack_.push_back(depth);
  }
  // Pops k values; returns their largest nesting depth.
  int pop(size_t k) {
    need(k);
    int d = 0;
    for (size_t j = 0; j < k; ++j) {
      d = std::max(d, stack_.back());
      stack_.pop_back();
    }
    return d;
  }
  // Pops everything above the last MARK and the MARK; returns the largest depth popped.
  int pop_mark(bool pairs = false) {
    if (frames_.empty())
      fail(op_at_, fmt::format("opcode 0x{:02x} needs a MARK, but none is open", static_cast<uint8_t>(p_[op_at_])));
    const size_t base = frames_.back();
    if (pairs && (stack_.size() - base) % 2 != 0)
      fail(op_at_, fmt::format("an odd number of values ({}) for key/value pairs", stack_.size() - base));
    int d = 0;
    for (size_t j = base; j < stack_.size(); ++j) d = std::max(d, stack_[j]);
    stack_.resize(base);
    frames_.pop_back();
    return d;
  }
  // The container (or callable/object) left on top absorbs values of nesting depth `inner`.
  void grow_top(int inner) {
    need(1);
    const int d = std::max(stack_.back(), inner + 1);
    if (d > kMaxDepth) fail(op_at_, fmt::format("containers nested deeper than {}", kMaxDepth));
    stack_.back() = d;
  }
  void memo_put(uint64_t id) {
    need(1);
    if (id > memo_.size())
      fail(op_at_, fmt::format("memo id {} skips ids (the next free one is {})", id, memo_.size()));
    if (id == memo_.size()) memo_.push_back(stack_.back());
    else memo_[id] = stack_.back();
  }
  void memo_get(uint64_t id) {
    if (id >= memo_.size())
      fail(op_at_, fmt::format("memo id {} read before it was stored ({} stored)", id, memo_.size()));
    push(memo_[id]);
  }

  const char* p_;
  size_t n_;
  std::string where_;
  size_t i_ = 0, op_at_ = 0;
  std::vector<int> stack_;      // nesting depth of each value
  std::vector<size_t> frames_;  // stack size at each open MARK
  std::vector<int> memo_;
};

}  // namespace

void check_pickle(const char* bytes, size_t size, const std::string& where) { PickleChecker(bytes, size, where).run(); }

void check_torch_zip(const std::string& path) {
  std::vector<std::string> records;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    records = reader->getAllRecords();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw DataError(
        fmt::format("'{}': not a readable zip archive, so neither a TorchScript archive nor a "
                    "torch.save'd state dict: {}",
                    path, what.substr(0, what.find('\n'))));
  }
  for (const auto& name : records) {
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".pkl") != 0) continue;
    at::DataPtr data;
    size_t size = 0;
    try {
      std::tie(data, size) = reader->getRecord(name);
    } catch (const std::exception& e) {
      const std::string what = e.what();
      throw DataError(fmt::format("'{}': cannot read record '{}': {}", path, name, what.substr(0, what.find('\n'))));
    }
    check_pickle(static_cast<const char*>(data.get()), size, fmt::format("'{}' record '{}'", path, name));
  }
}

}  // namespace daug::plugins::clip
