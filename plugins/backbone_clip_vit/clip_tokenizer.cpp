// CLIP byte-level BPE tokenizer; see clip_tokenizer.h. Follows openai/CLIP clip/simple_tokenizer.py.
#include "clip_tokenizer.h"

#include <daug/error.h>
#include <daug/log.h>

#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/locid.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <limits>
#include <map>

namespace daug::plugins::clip {
namespace {

std::string utf8_of(UChar32 cp) {
  icu::UnicodeString s;
  s.append(cp);
  std::string out;
  s.toUTF8String(out);
  return out;
}

std::string read_maybe_gzip(const std::string& path) {
  DAUG_CHECK_AS(DataError, std::filesystem::is_regular_file(path),
                "CLIP BPE vocabulary file not found: '", path,
                "' (expected bpe_simple_vocab_16e6.txt.gz; set [backbone].vocab)");
  gzFile f = gzopen(path.c_str(), "rb");
  DAUG_CHECK_AS(DataError, f != nullptr, "cannot open CLIP BPE vocabulary '", path, "'");
  std::string out;
  char buf[1 << 16];
  for (;;) {
    int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      throw DataError("CLIP BPE vocabulary '" + path + "' is not a readable gzip file: " + msg);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  gzclose(f);
  return out;
}

// Windows-1252 replacements Python's html.unescape applies to numeric references 0x80..0x9F.
const std::map<int, UChar32>& cp1252() {
  static const std::map<int, UChar32> m = {
      {0x80, 0x20ac}, {0x82, 0x201a}, {0x83, 0x0192}, {0x84, 0x201e}, {0x85, 0x2026}, {0x86, 0x2020},
      {0x87, 0x2021}, {0x88, 0x02c6}, {0x89, 0x2030}, {0x8a, 0x0160}, {0x8b, 0x2039}, {0x8c, 0x0152},
      {0x8e, 0x017d}, {0x91, 0x2018}, {0x92, 0x2019}, {0x93, 0x201c}, {0x94, 0x201d}, {0x95, 0x2022},
      {0x96, 0x2013}, {0x97, 0x2014}, {0x98, 0x02dc}, {0x99, 0x2122}, {0x9a, 0x0161}, {0x9b, 0x203a},
      {0x9c, 0x0153}, {0x9e, 0x017e}, {0x9f, 0x0178}, {0x81, 0x81}, {0x8d, 0x8d}, {0x8f, 0x8f},
      {0x90, 0x90}, {0x9d, 0x9d}};
  return m;
}

// Named entities handled (HTML5 names, with ';'). The legacy ones Python also accepts without ';'.
const std::map<std::string, UChar32>& named_entities() {
  static const std::map<std::string, UChar32> m = {
      {"amp", '&'},      {"lt", '<'},        {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
      {"nbsp", 0xa0},    {"copy", 0xa9},     {"reg", 0xae},     {"deg", 0xb0},     {"plusmn", 0xb1},
      {"micro", 0xb5},   {"middot", 0xb7},   {"times", 0xd7},   {"divide", 0xf7},  {"frac12", 0xbd},
      {"frac14", 0xbc},  {"frac34", 0xbe},   {"sup2", 0xb2},    {"sup3", 0xb3},    {"para", 0xb6},
      {"sect", 0xa7},    {"laquo", 0xab},    {"raquo", 0xbb},   {"eacute", 0xe9},  {"egrave", 0xe8},
      {"aacute", 0xe1},  {"agrave", 0xe0},   {"uuml", 0xfc},    {"ouml", 0xf6},    {"auml", 0xe4},
      {"szlig", 0xdf},   {"ccedil", 0xe7},   {"iuml", 0xef},    {"ndash", 0x2013}, {"mdash", 0x2014},
      {"lsquo", 0x2018}, {"rsquo", 0x2019},  {"ldquo", 0x201c}, {"rdquo", 0x201d}, {"hellip", 0x2026},
      {"bull", 0x2022},  {"trade", 0x2122},  {"le", 0x2264},    {"ge", 0x2265},    {"ne", 0x2260},
      {"asymp", 0x2248}, {"rarr", 0x2192},   {"larr", 0x2190},  {"uarr", 0x2191},  {"darr", 0x2193},
      {"alpha", 0x3b1},  {"beta", 0x3b2},    {"gamma", 0x3b3},  {"delta", 0x3b4},  {"mu", 0x3bc},
      {"euro", 0x20ac},  {"pound", 0xa3},    {"yen", 0xa5},     {"cent", 0xa2},    {"shy", 0xad}};
  return m;
}
bool is_legacy_entity(const std::string& name) {
  static const char* legacy[] = {"amp", "lt", "gt", "quot", "nbsp", "copy", "reg", "deg", "plusmn", "micro",
                                 "middot", "times", "divide", "frac12", "frac14", "frac34", "sup2", "sup3",
                                 "para", "sect", "laquo", "raquo", "eacute", "egrave", "aacute", "agrave",
                                 "uuml", "ouml", "auml", "szlig", "ccedil", "iuml", "pound", "yen", "cent", "shy"};
  for (const char* l : legacy)
    if (name == l) return true;
  return false;
}

// Python html.unescape for numeric references and the named entities above.
std::string html_unescape(const std::string& s) {
  if (s.find('&') == std::string::npos) return s;
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < s.size() && s[j] == '#') {
      bool hex = j + 1 < s.size() && (s[j + 1] == 'x' || s[j + 1] == 'X');
      size_t k = j + (hex ? 2 : 1);
      size_t start = k;
      while (k < s.size() && (hex ? std::isxdigit(static_cast<unsigned char>(s[k]))
                                  : std::isdigit(static_cast<unsigned char>(s[k]))))
        ++k;
      if (k == start) {
        out += s[i++];
        continue;
      }
      std::string digits = s.substr(start, k - start);
      long long num = 0;
      bool overflow = false;
      for (char c : digits) {
        int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10);
        num = num * (hex ? 16 : 10) + d;
        if (num > 0x10ffff) overflow = true, num = 0x110000;
      }
      if (k < s.size() && s[k] == ';') ++k;
      UChar32 cp;
      auto it = cp1252().find(static_cast<int>(num));
      if (!overflow && it != cp1252().end()) cp = it->second;
      else if (overflow || num == 0 || (num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) cp = 0xfffd;
      else cp = static_cast<UChar32>(num);
      out += utf8_of(cp);
      i = k;
      continue;
    }
    size_t k = j;
    while (k < s.size() && k - j < 32 && std::isalnum(static_cast<unsigned char>(s[k]))) ++k;
    std::string name = s.substr(j, k - j);
    if (k < s.size() && s[k] == ';') {
      auto it = named_entities().find(name);
      if (it != named_entities().end()) {
        out += utf8_of(it->second);
        i = k + 1;
        continue;
      }
    }
    // Without ';': the longest legacy entity that prefixes the name.
    bool done = false;
    for (size_t len = name.size(); len >= 2 && !done; --len) {
      std::string pre = name.substr(0, len);
      if (is_legacy_entity(pre)) {
        out += utf8_of(named_entities().at(pre));
        i = j + len;
        done = true;
      }
    }
    if (!done) out += s[i++];
  }
  return out;
}

// Python str.isspace(): the White_Space property plus the information separators U+001C..U+001F.
bool py_isspace(UChar32 c) { return u_isUWhiteSpace(c) || (c >= 0x1c && c <= 0x1f); }

}  // namespace

struct ClipTokenizer::Regex {
  std::unique_ptr<icu::RegexPattern> pattern;
};

ClipTokenizer::ClipTokenizer(const std::string& vocab_path, Cleaning cleaning)
    : path_(vocab_path), cleaning_(cleaning), regex_(std::make_unique<Regex>()) {
  // bytes_to_unicode(): printable bytes map to themselves, the other 68 to chr(256 + n) in byte order.
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xa1; b <= 0xac; ++b) bs.push_back(b);
  for (int b = 0xae; b <= 0xff; ++b) bs.push_back(b);
  std::vector<int> cs = bs;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + n);
      ++n;
    }
  }
  byte_encoder_.assign(256, std::string());
  std::vector<std::string> vocab;
  for (size_t i = 0; i < bs.size(); ++i) {
    std::string u = utf8_of(cs[i]);
    byte_encoder_[static_cast<size_t>(bs[i])] = u;
    byte_decoder_[u] = bs[i];
    vocab.push_back(u);  // list(bytes_to_unicode().values()), in bs order
  }
  for (size_t i = 0; i < 256; ++i) vocab.push_back(vocab[i] + "</w>");

  const std::string text = read_maybe_gzip(vocab_path);
  // merges = text.split('\n')[1 : 49152-256-2+1]
  size_t pos = text.find('\n');
  DAUG_CHECK_AS(DataError, pos != std::string::npos, "CLIP BPE vocabulary '", vocab_path,
                "' has no merge lines (expected a header line then ", kNumMerges, "+ merges)");
  ++pos;
  for (int64_t r = 0; r < kNumMerges; ++r) {
    DAUG_CHECK_AS(DataError, pos < text.size(), "CLIP BPE vocabulary '", vocab_path, "' has only ", r,
                  " merges, but CLIP needs ", kNumMerges);
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t sp = line.find(' ');
    DAUG_CHECK_AS(DataError, sp != std::string::npos && sp > 0 && sp + 1 < line.size() &&
                                 line.find(' ', sp + 1) == std::string::npos,
                  "CLIP BPE vocabulary '", vocab_path, "' line ", r + 2,
                  ": expected two space-separated symbols, but got '", line, "'");
    ranks_[line] = r;  // key "first second"; a repeated merge keeps the later rank, as dict() does
    vocab.push_back(line.substr(0, sp) + line.substr(sp + 1));
  }
  vocab.push_back("<|startoftext|>");
  vocab.push_back("<|endoftext|>");
  DAUG_CHECK(static_cast<int64_t>(vocab.size()) == kVocabSize, "CLIP vocabulary size ", vocab.size());
  decoder_ = vocab;
  for (size_t i = 0; i < vocab.size(); ++i) encoder_[vocab[i]] = static_cast<int64_t>(i);
  cache_["<|startoftext|>"] = "<|startoftext|>";
  cache_["<|endoftext|>"] = "<|endoftext|>";

  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeString pat = icu::UnicodeString::fromUTF8(
      R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)");
  UParseError perr;
  regex_->pattern.reset(icu::RegexPattern::compile(pat, UREGEX_CASE_INSENSITIVE, perr, status));
  DAUG_CHECK(U_SUCCESS(status), "ICU failed to compile the CLIP pre-tokenisation regex: ", u_errorName(status));
}

ClipTokenizer::~ClipTokenizer() = default;

std::string ClipTokenizer::clean(const std::string& text, Cleaning cleaning) {
  UErrorCode status = U_ZERO_ERROR;
  // ftfy.fix_text's normalisation step (NFC).
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  DAUG_CHECK(U_SUCCESS(status), "ICU NFC normaliser unavailable: ", u_errorName(status));
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(text);
  icu::UnicodeString normed = nfc->normalize(u, status);
  DAUG_CHECK(U_SUCCESS(status), "ICU NFC normalisation failed: ", u_errorName(status));
  std::string s;
  normed.toUTF8String(s);
  if (cleaning == Cleaning::openai) s = html_unescape(html_unescape(s));
  // whitespace_clean: runs of whitespace -> ' ', strip (basic_clean's strip is subsumed).
  icu::UnicodeString w = icu::UnicodeString::fromUTF8(s);
  icu::UnicodeString collapsed;
  bool in_space = false;
  for (int32_t i = 0; i < w.length();) {
    UChar32 c = w.char32At(i);
    i += U16_LENGTH(c);
    if (py_isspace(c)) {
      in_space = true;
      continue;
    }
    if (in_space && collapsed.length() > 0) collapsed.append(static_cast<UChar>(' '));
    in_space = false;
    collapsed.append(c);
  }
  collapsed.toLower(icu::Locale::getRoot());
  std::string out;
  collapsed.toUTF8String(out);
  return out;
}

std::vector<std::string> ClipTokenizer::pretokenize(const std::string& cleaned) const {
  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeString input = icu::UnicodeString::fromUTF8(cleaned);
  std::unique_ptr<icu::RegexMatcher> m(regex_->pattern->matcher(input, status));
  DAUG_CHECK(U_SUCCESS(status), "ICU regex matcher failed: ", u_errorName(status));
  std::vector<std::string> pieces;
  while (m->find(status)) {
    icu::UnicodeString g = m->group(status);
    std::string piece;
    g.toUTF8String(piece);
    pieces.push_back(std::move(piece));
  }
  DAUG_CHECK(U_SUCCESS(status), "ICU regex search failed: ", u_errorName(status));
  return pieces;
}

std::string ClipTokenizer::bpe(const std::string& piece) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(piece);
    if (it != cache_.end()) return it->second;
  }
  // piece is made of byte stand-ins (each one code point, 1 or 2 UTF-8 bytes).
  std::vector<std::string> word;
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(piece);
  for (int32_t i = 0; i < u.length();) {
    UChar32 c = u.char32At(i);
    i += U16_LENGTH(c);
    word.push_back(utf8_of(c));
  }
  std::string result;
  if (word.empty()) return result;
  word.back() += "</w>";
  if (word.size() > 1) {
    for (;;) {
      int64_t best = std::numeric_limits<int64_t>::max();
      size_t best_i = 0;
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        auto it = ranks_.find(word[i] + " " + word[i + 1]);
        if (it != ranks_.end() && it->second < best) best = it->second, best_i = i;
      }
      if (best == std::numeric_limits<int64_t>::max()) break;
      const std::string first = word[best_i], second = word[best_i + 1];
      std::vector<std::string> merged;
      merged.reserve(word.size());
      for (size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
          merged.push_back(first + second);
          i += 2;
        } else {
          merged.push_back(word[i]);
          ++i;
        }
      }
      word.swap(merged);
      if (word.size() == 1) break;
    }
  }
  for (size_t i = 0; i < word.size(); ++i) {
    if (i) result += ' ';
    result += word[i];
  }
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cache_.emplace(piece, result);
  return result;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& piece : pretokenize(clean(text, cleaning_))) {
    std::string mapped;
    for (unsigned char b : piece) mapped += byte_encoder_[b];
    std::string symbols = bpe(mapped);
    size_t start = 0;
    while (start <= symbols.size()) {
      size_t end = symbols.find(' ', start);
      if (end == std::string::npos) end = symbols.size();
      std::string sym = symbols.substr(start, end - start);
      auto it = encoder_.find(sym);
      DAUG_CHECK(it != encoder_.end(), "CLIP BPE produced a symbol missing from the vocabulary: '", sym, "'");
      ids.push_back(it->second);
      start = end + 1;
    }
  }
  return ids;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string joined;
  for (int64_t id : ids) {
    DAUG_CHECK(id >= 0 && id < kVocabSize, "CLIP token id must be in [0, ", kVocabSize, "), but got ", id);
    joined += decoder_[static_cast<size_t>(id)];
  }
  std::string bytes;
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(joined);
  for (int32_t i = 0; i < u.length();) {
    UChar32 c = u.char32At(i);
    i += U16_LENGTH(c);
    bytes += static_cast<char>(byte_decoder_.at(utf8_of(c)));
  }
  std::string out;
  for (size_t p = 0; p < bytes.size();) {
    if (bytes.compare(p, 4, "</w>") == 0) {
      out += ' ';
      p += 4;
    } else {
      out += bytes[p++];
    }
  }
  return out;
}

std::vector<int64_t> tokenize_batch(const ClipTokenizer& tok, const std::vector<std::string>& texts,
                                    const TokenizeOptions& opts, int64_t* row_length) {
  DAUG_CHECK(opts.context_length >= 2, "context_length must be >= 2, but got ", opts.context_length);
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  int64_t longest = 0;
  int64_t truncated = 0, longest_input = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> ids = tok.encode(texts[i]);
    std::vector<int64_t> row;
    row.reserve(ids.size() + 2);
    row.push_back(ClipTokenizer::kStartOfText);
    const int64_t keep = opts.context_length - 2;
    if (static_cast<int64_t>(ids.size()) > keep) {
      DAUG_CHECK_AS(DataError, opts.truncate, "text ", i, " has ", ids.size() + 2,
                    " tokens (with start/end), more than context_length ", opts.context_length,
                    ", and truncation is off");
      ++truncated;
      longest_input = std::max<int64_t>(longest_input, static_cast<int64_t>(ids.size()) + 2);
      ids.resize(static_cast<size_t>(keep));
    }
    row.insert(row.end(), ids.begin(), ids.end());
    row.push_back(ClipTokenizer::kEndOfText);
    longest = std::max<int64_t>(longest, static_cast<int64_t>(row.size()));
    rows.push_back(std::move(row));
  }
  if (truncated > 0) {
    // One line per batch, and only the first few batches at warning level: a training loop tokenises the same
    // reports every epoch. (A trivially destructible counter: safe in a dlopen'd plugin.)
    static std::atomic<int> warned{0};
    const bool loud = warned.fetch_add(1) < 3;
    log::write(loud ? log::Level::warn : log::Level::debug,
               fmt::format("clip tokenizer: {} of {} texts truncated to context_length {} (longest had {} tokens with "
                           "start/end; the end token is kept){}", truncated, texts.size(), opts.context_length,
                           longest_input, warned.load() == 3 ? "; later truncations are logged at debug level" : ""));
  }
  const int64_t L = opts.pad_longest ? std::max<int64_t>(longest, 2) : opts.context_length;
  std::vector<int64_t> out(rows.size() * static_cast<size_t>(L), opts.pad_id);
  for (size_t i = 0; i < rows.size(); ++i)
    std::copy(rows[i].begin(), rows[i].end(), out.begin() + static_cast<std::ptrdiff_t>(i * static_cast<size_t>(L)));
  *row_length = L;
  return out;
}

}  // namespace daug::plugins::clip
