#pragma once
/// CLIP's byte-level BPE tokenizer (OpenAI `clip/simple_tokenizer.py`), producing the same ids.
///
/// Pipeline per text (Cleaning::openai): ftfy.fix_text with its defaults except the mojibake repair (fix_encoding),
/// then Python's html.unescape twice (simple_tokenizer's basic_clean); Cleaning::hf (Hugging Face's
/// CLIPTokenizerFast, which DAug uses): NFC only. Then whitespace runs -> ' ', strip, lowercase (ICU root locale,
/// as Python's str.lower); then the pre-tokenisation regex
///   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+   (ICU, case-insensitive)
/// each piece's UTF-8 bytes mapped through bytes_to_unicode, BPE with the first 48,894 merges of
/// bpe_simple_vocab_16e6.txt.gz (cached per piece), ids from the 49,408-entry vocabulary.
///
/// Thread safety: encode() may be called from several threads (the BPE cache is guarded by a mutex).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace daug::plugins::clip {

class ClipTokenizer {
 public:
  static constexpr int64_t kStartOfText = 49406;
  static constexpr int64_t kEndOfText = 49407;
  static constexpr int64_t kVocabSize = 49408;
  static constexpr int64_t kNumMerges = 49152 - 256 - 2;  // 48,894

  /// Text cleaning: openai = simple_tokenizer.py (ftfy.fix_text, html.unescape twice); hf = CLIPTokenizerFast's
  /// normaliser (NFC, whitespace collapse, lowercase; no ftfy, no unescape).
  enum class Cleaning { openai, hf };

  /// Loads the merges from a gzip-compressed (or plain) bpe_simple_vocab file. A missing or malformed file
  /// throws daug::DataError naming the path (and the line for a malformed merge).
  explicit ClipTokenizer(const std::string& vocab_path, Cleaning cleaning = Cleaning::openai);
  ~ClipTokenizer();
  ClipTokenizer(const ClipTokenizer&) = delete;
  ClipTokenizer& operator=(const ClipTokenizer&) = delete;

  /// Text ids without start/end tokens.
  std::vector<int64_t> encode(const std::string& text) const;
  /// Inverse of encode (up to cleaning): ids -> text, `</w>` -> ' '. Unknown ids throw daug::Error.
  std::string decode(const std::vector<int64_t>& ids) const;

  /// The cleaning applied before pre-tokenisation (exposed for tests).
  static std::string clean(const std::string& text, Cleaning cleaning = Cleaning::openai);
  /// The pre-tokenisation pieces of an already cleaned text (exposed for tests).
  std::vector<std::string> pretokenize(const std::string& cleaned) const;

  const std::string& vocab_path() const { return path_; }

 private:
  std::string bpe(const std::string& piece) const;  // space-separated BPE symbols

  std::string path_;
  Cleaning cleaning_;
  std::vector<std::string> byte_encoder_;                  // byte -> UTF-8 of its unicode stand-in
  std::unordered_map<std::string, int64_t> encoder_;       // symbol -> id
  std::vector<std::string> decoder_;                       // id -> symbol
  std::unordered_map<std::string, int64_t> byte_decoder_;  // stand-in -> byte
  std::unordered_map<std::string, int64_t> ranks_;         // "a\x01b" -> merge rank
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::string> cache_;
  struct Regex;
  std::unique_ptr<Regex> regex_;
};

/// Options for turning a batch of texts into an id matrix.
struct TokenizeOptions {
  int64_t context_length = 77;
  bool pad_longest = false;    ///< pad to the longest text in the batch (HF padding='longest') instead of context_length
  int64_t pad_id = 0;          ///< 0 (OpenAI) or 49407 (HF)
  bool truncate = true;        ///< false: a too-long text throws daug::DataError
};

/// [SOT] + ids + [EOT] per text, padded; too-long texts keep SOT + the first L-2 ids + EOT (HF fast and
/// OpenAI truncate=True agree) and a warning names the text's index and length. Returns row-major ids and
/// the row length.
std::vector<int64_t> tokenize_batch(const ClipTokenizer& tok, const std::vector<std::string>& texts,
                                    const TokenizeOptions& opts, int64_t* row_length);

}  // namespace daug::plugins::clip
