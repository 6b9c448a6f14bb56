// CLIP byte-level BPE tokenizer (plugins/backbone_clip_vit/clip_tokenizer.cpp) on arbitrary bytes: cleaning
// (NFC, html unescape, whitespace, lowercase), ICU pre-tokenisation, BPE, ids, batching, decoding.
#include "fuzz_target.h"

#include "clip_tokenizer.h"

#include <memory>

namespace {
using daug::plugins::clip::ClipTokenizer;
const ClipTokenizer& tokenizer(ClipTokenizer::Cleaning cleaning) {
  static const auto openai = std::make_unique<ClipTokenizer>(DAUG_CLIP_VOCAB_FILE, ClipTokenizer::Cleaning::openai);
  static const auto hf = std::make_unique<ClipTokenizer>(DAUG_CLIP_VOCAB_FILE, ClipTokenizer::Cleaning::hf);
  return cleaning == ClipTokenizer::Cleaning::openai ? *openai : *hf;
}
}  // namespace

DAUG_FUZZ_TARGET(tokenizer) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (auto cleaning : {ClipTokenizer::Cleaning::openai, ClipTokenizer::Cleaning::hf}) {
    const ClipTokenizer& tok = tokenizer(cleaning);
    const std::vector<int64_t> ids = tok.encode(text);
    for (int64_t id : ids) DAUG_FUZZ_ASSERT(id >= 0 && id < ClipTokenizer::kVocabSize, "tokenizer");
    (void)tok.decode(ids);
    daug::plugins::clip::TokenizeOptions opts;
    opts.context_length = 8;
    int64_t row = 0;
    const std::vector<int64_t> batch = daug::plugins::clip::tokenize_batch(tok, {text, ""}, opts, &row);
    DAUG_FUZZ_ASSERT(row == 8 && batch.size() == 16 && batch[0] == ClipTokenizer::kStartOfText, "tokenizer");
  }
}
