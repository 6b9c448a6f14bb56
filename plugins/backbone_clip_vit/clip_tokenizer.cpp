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
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <string>

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

// The tables of the `openai` cleaning, generated from Python's html module and ftfy (tools/gen_clean_tables.py).
#include "clean_tables.inc"

using U32 = std::u32string;

U32 to_u32(const std::string& utf8) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(utf8);  // invalid bytes become U+FFFD
  U32 out;
  out.reserve(static_cast<size_t>(u.length()));
  for (int32_t i = 0; i < u.length();) {
    const UChar32 c = u.char32At(i);
    i += U16_LENGTH(c);
    out.push_back(static_cast<char32_t>(c));
  }
  return out;
}

std::string to_utf8(const U32& s) {
  icu::UnicodeString u;
  for (char32_t c : s) u.append(static_cast<UChar32>(c));
  std::string out;
  u.toUTF8String(out);
  return out;
}

template <size_t N>
const char* find_entity(const EntityEntry (&table)[N], const std::string& name) {
  auto it = std::lower_bound(std::begin(table), std::end(table), name, [](const EntityEntry& e, const std::string& n) {
    return std::strcmp(e.name, n.c_str()) < 0;
  });
  return it != std::end(table) && name == it->name ? it->utf8 : nullptr;
}

template <size_t N>
const char* find_code_point(const WidthEntry (&table)[N], char32_t c) {
  auto it = std::lower_bound(std::begin(table), std::end(table), c,
                             [](const WidthEntry& e, char32_t v) { return static_cast<char32_t>(e.code_point) < v; });
  return it != std::end(table) && static_cast<char32_t>(it->code_point) == c ? it->utf8 : nullptr;
}

bool ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool ascii_hex(char32_t c) { return ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool ascii_alnum(char32_t c) { return ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Python html._invalid_charrefs for 0x80..0x9F: Windows-1252 (undefined bytes stay C1 controls). ftfy's
// fix_c1_controls ("sloppy-windows-1252") maps the same way.
char32_t cp1252_of_c1(char32_t c) {
  static const char16_t m[32] = {0x20ac, 0x81,   0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
                                 0x2039, 0x0152, 0x8d,   0x017d, 0x8f,   0x90,   0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
                                 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d,   0x017e, 0x0178};
  return m[c - 0x80];
}

// Python's html.unescape (Lib/html/__init__.py): the regex
//   &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
// with _replace_charref: numeric references (invalid ones replaced or dropped as Python does) and the longest
// html5 name (names without ';' only for the legacy entities, which html5 lists without ';').
U32 python_html_unescape(const U32& s) {
  if (s.find(U'&') == U32::npos) return s;
  U32 out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    const size_t j = i + 1;
    if (j < s.size() && s[j] == U'#') {
      const bool hex = j + 1 < s.size() && (s[j + 1] == U'x' || s[j + 1] == U'X');
      size_t k = j + (hex ? 2 : 1);
      const size_t start = k;
      uint64_t num = 0;
      while (k < s.size() && (hex ? ascii_hex(s[k]) : ascii_digit(s[k]))) {
        const char32_t c = s[k];
        const uint64_t d = ascii_digit(c) ? c - U'0' : (c | 0x20) - U'a' + 10;
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + d, 0x110000);  // saturate: only "> 0x10FFFF" matters
        ++k;
      }
      if (k > start) {
        if (k < s.size() && s[k] == U';') ++k;
        if (num == 0) out.push_back(0xfffd);
        else if (num == 0x0d) out.push_back(U'\r');
        else if (num >= 0x80 && num <= 0x9f) out.push_back(cp1252_of_c1(static_cast<char32_t>(num)));
        else if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) out.push_back(0xfffd);
        else if ((num >= 0x1 && num <= 0x8) || (num >= 0xe && num <= 0x1f) || num == 0x7f || num == 0xb ||
                 (num >= 0xfdd0 && num <= 0xfdef) || (num & 0xfffe) == 0xfffe) {
          // _invalid_codepoints: dropped
        } else {
          out.push_back(static_cast<char32_t>(num));
        }
        i = k;
        continue;
      }
      // "&#" without digits: no match at this '&' (the name branch excludes '#').
      out.push_back(s[i++]);
      continue;
    }
    size_t k = j;
    while (k < s.size() && k - j < 32 && s[k] != U'\t' && s[k] != U'\n' && s[k] != U'\f' && s[k] != U' ' &&
           s[k] != U'<' && s[k] != U'&' && s[k] != U'#' && s[k] != U';')
      ++k;
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (k < s.size() && s[k] == U';') ++k;
    const U32 name = s.substr(j, k - j);
    const std::string name8 = to_utf8(name);
    if (const char* v = find_entity(kHtml5Entities, name8)) {
      out += to_u32(v);
    } else {
      bool done = false;
      for (size_t x = name.size() - 1; x > 1 && !done; --x) {
        if (const char* v = find_entity(kHtml5Entities, to_utf8(name.substr(0, x)))) {
          out += to_u32(v);
          out += name.substr(x);
          done = true;
        }
      }
      if (!done) out += U'&' + name;
    }
    i = k;
  }
  return out;
}

// ftfy.fixes.unescape_html: "&#?[0-9A-Za-z]{1,24};" replaced by ftfy's HTML_ENTITIES (html5 names ending in ';' and
// all-caps variants) or, for "&#...;", by html.unescape unless that leaves a ';'.
U32 ftfy_unescape_html(const U32& s) {
  U32 out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == U'&') {
      size_t k = i + 1;
      const bool numeric = k < s.size() && s[k] == U'#';
      if (numeric) ++k;
      const size_t start = k;
      while (k < s.size() && ascii_alnum(s[k])) ++k;
      if (k > start && k - start <= 24 && k < s.size() && s[k] == U';') {
        const U32 match = s.substr(i, k + 1 - i);
        const std::string name = to_utf8(s.substr(start, k - start));
        const char* v = numeric ? nullptr : find_entity(kHtml5Entities, name + ";");
        if (!numeric && !v) v = find_entity(kFtfyUpperEntities, name);
        if (v) {
          out += to_u32(v);
        } else if (numeric) {
          const U32 u = python_html_unescape(match);
          out += u.find(U';') == U32::npos ? u : match;
        } else {
          out += match;
        }
        i = k + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

U32 nfc(const U32& s) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
  DAUG_CHECK(U_SUCCESS(status), "ICU NFC normaliser unavailable: ", u_errorName(status));
  icu::UnicodeString u;
  for (char32_t c : s) u.append(static_cast<UChar32>(c));
  icu::UnicodeString normed = n->normalize(u, status);
  DAUG_CHECK(U_SUCCESS(status), "ICU NFC normalisation failed: ", u_errorName(status));
  std::string out;
  normed.toUTF8String(out);
  return to_u32(out);
}

// One pass of ftfy.fix_and_explain's fixers after unescape_html, in its order (fix_encoding, the mojibake repair,
// is not reproduced; fix_surrogates has nothing to do on UTF-8 input).
U32 ftfy_fixers(const U32& s) {
  U32 t;
  t.reserve(s.size());
  for (char32_t c : s) {  // fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes
    if (c >= 0x80 && c <= 0x9f) c = cp1252_of_c1(c);
    if (const char* v = find_code_point(kFtfyLigatures, c)) {
      t += to_u32(v);
    } else if (const char* w = find_code_point(kFtfyWidthMap, c)) {
      t += to_u32(w);
    } else if (c == 0x02bc || (c >= 0x2018 && c <= 0x201b)) {
      t.push_back(U'\'');
    } else if (c >= 0x201c && c <= 0x201f) {
      t.push_back(U'"');
    } else {
      t.push_back(c);
    }
  }
  U32 u;  // fix_line_breaks: \r\n, \r, U+2028, U+2029, U+0085 -> \n
  for (size_t i = 0; i < t.size(); ++i) {
    const char32_t c = t[i];
    if (c == U'\r' && i + 1 < t.size() && t[i + 1] == U'\n') continue;
    u.push_back(c == U'\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? U'\n' : c);
  }
  U32 v;  // remove_terminal_escapes: \033\[((?:\d|;)*)([a-zA-Z])
  for (size_t i = 0; i < u.size();) {
    if (u[i] == 0x1b && i + 1 < u.size() && u[i + 1] == U'[') {
      size_t k = i + 2;
      while (k < u.size() && (u_isdigit(static_cast<UChar32>(u[k])) || u[k] == U';')) ++k;
      if (k < u.size() && ((u[k] >= U'a' && u[k] <= U'z') || (u[k] >= U'A' && u[k] <= U'Z'))) {
        i = k + 1;
        continue;
      }
    }
    v.push_back(u[i++]);
  }
  U32 w;  // remove_control_chars
  for (char32_t c : v) {
    const bool drop = c <= 0x08 || c == 0x0b || (c >= 0x0e && c <= 0x1f) || c == 0x7f || (c >= 0x206a && c <= 0x206f) ||
                      c == 0xfeff || (c >= 0xfff9 && c <= 0xfffc);
    if (!drop) w.push_back(c);
  }
  return nfc(w);
}

// ftfy.fix_text with its default configuration, minus fix_encoding: the text is fixed one line at a time (each
// segment keeps its '\n'); from the first line that contains '<' on, HTML entities are left alone (the text is
// taken for real HTML); each segment is fixed until a pass changes nothing.
U32 ftfy_fix_text(const U32& text) {
  U32 out;
  bool unescape = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t brk = text.find(U'\n', pos);
    brk = brk == U32::npos ? text.size() : brk + 1;
    U32 seg = text.substr(pos, brk - pos);
    if (seg.find(U'<') != U32::npos) unescape = false;
    for (;;) {
      const U32 before = seg;
      if (unescape) seg = ftfy_unescape_html(seg);
      seg = ftfy_fixers(seg);
      if (seg == before) break;
    }
    out += seg;
    pos = brk;
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
  std::string s;
  if (cleaning == Cleaning::openai) {
    // simple_tokenizer.basic_clean: ftfy.fix_text, then html.unescape twice.
    s = to_utf8(python_html_unescape(python_html_unescape(ftfy_fix_text(to_u32(text)))));
  } else {
    // CLIPTokenizerFast's normaliser: NFC.
    s = to_utf8(nfc(to_u32(text)));
  }
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
