// CLIP tokenizer: ids equal OpenAI's simple_tokenizer.py. The expected ids of the REFERENCE §9 examples come
// from REFERENCE.md; the `openai`-cleaning ids were produced by OpenAI's real clip/simple_tokenizer.py with ftfy 6.3.1
// (tools/openai_cleaning_corpus.py, `--ids-for texts.txt` for a plain list), the `hf`-cleaning ones by
// tools/clip_tokenizer_ref.py --hf (a stdlib re-implementation without ftfy and html.unescape).
#include "clip_tokenizer.h"

#include <daug/error.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <test_support.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace daug::plugins::clip {
namespace {

const ClipTokenizer& tok() {
  static std::unique_ptr<ClipTokenizer> t = std::make_unique<ClipTokenizer>(DAUG_CLIP_VOCAB_FILE);
  return *t;
}

std::vector<int64_t> with_ends(const std::string& text) {
  std::vector<int64_t> ids = {ClipTokenizer::kStartOfText};
  for (int64_t i : tok().encode(text)) ids.push_back(i);
  ids.push_back(ClipTokenizer::kEndOfText);
  return ids;
}

TEST(ClipTokenizer, ReferenceExamples) {
  EXPECT_EQ(with_ends("a photo of a cat"), (std::vector<int64_t>{49406, 320, 1125, 539, 320, 2368, 49407}));
  EXPECT_EQ(with_ends("A chest-xray image of cardiomegaly."),
            (std::vector<int64_t>{49406, 320, 10563, 268, 87, 3077, 2867, 539, 6211, 3693, 2001, 344, 269, 49407}));
}

TEST(ClipTokenizer, MatchesPythonReferenceOnVariedText) {
  // Apostrophes, punctuation, digits (one token each), non-ASCII letters (multi-byte BPE symbols).
  EXPECT_EQ(with_ends("It's a café; don't worry, the naïve Größe is 12.5cm!"),
            (std::vector<int64_t>{49406, 585, 568, 320, 15304, 282, 847, 713, 7534, 267, 518, 1097, 35689, 563,
                                  709, 7255, 127, 253, 324, 533, 272, 273, 269, 276, 3741, 256, 49407}));
  EXPECT_EQ(with_ends("Heart size is normal.  No acute cardiopulmonary process (see #3, 2019)."),
            (std::vector<int64_t>{49406, 1936, 3235, 533, 5967, 269, 871, 19734, 6211, 39858, 749, 856, 4078, 263,
                                  862, 258, 274, 267, 273, 271, 272, 280, 1818, 49407}));
  // Contractions 'll 've 'd 'm, a bare '&', HTML entities (unescaped twice).
  EXPECT_EQ(with_ends("He'll say they've gone & we'd stay &amp; I'm fine &lt;ok&gt;"),
            (std::vector<int64_t>{49406, 797, 1342, 1451, 889, 1200, 3601, 261, 649, 1896, 2277, 261, 328, 880,
                                  3797, 283, 2481, 285, 49407}));
  EXPECT_EQ(with_ends("Ünïcödé ÆØÅ straße   résumé — “quoted” …"),
            (std::vector<int64_t>{49406, 6522, 77,  35689, 66,   7255, 67,   4166, 42495, 17483, 127, 354,  1894,
                                  127,   253,  324, 29106, 7054, 4166, 2005, 257,  27706, 257,   959, 49407}));
  // Special tokens written in the text, a circled digit and a vulgar fraction (\p{N}).
  EXPECT_EQ(with_ends("<|startoftext|>hello<|endoftext|> x2 ①½ 42"),
            (std::vector<int64_t>{49406, 49406, 3306, 49407, 343, 273, 158, 239, 510, 33613, 275, 273, 49407}));
}

// 297 random strings mixing ASCII, accented Latin, Greek, Cyrillic, CJK, digits of other scripts, emoji,
// HTML entities, special tokens, tabs, NBSP and combining marks (testdata/tokenizer_corpus.txt; the 6 of the
// original 303 that ftfy's mojibake heuristic rewrites were dropped); the expected ids in
// testdata/tokenizer_corpus_ids.txt are OpenAI simple_tokenizer.py's (with ftfy) for that file.
TEST(ClipTokenizer, MatchesPythonReferenceOnRandomCorpus) {
  std::ifstream texts(std::string(DAUG_CLIP_TESTDATA_DIR) + "/tokenizer_corpus.txt");
  std::ifstream expected(std::string(DAUG_CLIP_TESTDATA_DIR) + "/tokenizer_corpus_ids.txt");
  ASSERT_TRUE(texts.good() && expected.good());
  std::string text, ids_line;
  int checked = 0;
  while (std::getline(texts, text)) {
    if (text.empty()) continue;
    ASSERT_TRUE(std::getline(expected, ids_line)) << "ids file shorter than the corpus";
    std::vector<int64_t> want;
    std::stringstream ss(ids_line);
    std::string item;
    while (std::getline(ss, item, ',')) want.push_back(std::stoll(item));
    EXPECT_EQ(with_ends(text), want) << "line " << checked + 1 << ": " << text;
    ++checked;
  }
  EXPECT_EQ(checked, 297);
}

// testdata/openai_cleaning_corpus.jsonl: radiology-report sentences mixed with what ftfy.fix_text changes (curly
// quotes, ligatures, full-width forms, odd spaces, control and C1 characters, terminal escapes, line breaks,
// combining marks, single and repeated HTML escapes with and without '<'), with the ids of OpenAI's real
// simple_tokenizer.py + ftfy 6.3.1 (tools/openai_cleaning_corpus.py).
TEST(ClipTokenizer, OpenAICleaningMatchesSimpleTokenizerWithFtfy) {
  std::ifstream in(std::string(DAUG_CLIP_TESTDATA_DIR) + "/openai_cleaning_corpus.jsonl");
  ASSERT_TRUE(in.good());
  std::string line;
  int checked = 0, differ = 0;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    const std::string text = j.at("text").get<std::string>();
    const auto want = j.at("ids").get<std::vector<int64_t>>();
    const auto got = with_ends(text);
    if (got != want) {
      ++differ;
      ADD_FAILURE() << "line " << checked + 1 << ": " << j.at("text").dump()
                    << "\n  cleaned: " << nlohmann::json(ClipTokenizer::clean(text)).dump();
    }
    ++checked;
  }
  EXPECT_GE(checked, 300);
  EXPECT_EQ(differ, 0) << differ << " of " << checked << " texts got different ids";
}

TEST(ClipTokenizer, FtfyFixesBeforeTheHtmlUnescapes) {
  EXPECT_EQ(ClipTokenizer::clean("\u201c\ufb01ne\u201d \uff21\uff30\u3000view \u2019s"), "\"fine\" ap view 's");
  EXPECT_EQ(ClipTokenizer::clean("a\x1b[31mred\x1b[0m\x07 \xc2\x93q\xc2\x94"), "ared \"q\"");
  // ftfy unescapes until stable, then simple_tokenizer twice more: five levels of &amp; are all undone.
  EXPECT_EQ(ClipTokenizer::clean("&amp;amp;amp;amp;amp;lt;"), "<");
  // A literal '<' makes ftfy leave entities alone; simple_tokenizer's two html.unescape calls still apply.
  EXPECT_EQ(ClipTokenizer::clean("<b> &amp;amp;amp;lt;"), "<b> &amp;lt;");
  EXPECT_EQ(ClipTokenizer::clean("&EACUTE;T&Eacute; &SZLIG;"), "\u00e9t\u00e9 ss");
  // The Hugging Face cleaning does none of this.
  EXPECT_EQ(ClipTokenizer::clean("\u201c\ufb01ne\u201d &amp;", ClipTokenizer::Cleaning::hf),
            "\u201c\ufb01ne\u201d &amp;");
}

TEST(ClipTokenizer, HuggingFaceCleaningKeepsHtmlEntities) {
  // Expected ids: tools/clip_tokenizer_ref.py --hf (and without --hf for the OpenAI cleaning).
  ClipTokenizer hf(DAUG_CLIP_VOCAB_FILE, ClipTokenizer::Cleaning::hf);
  const std::string text = "He said &amp; &lt;b&gt; &#39;ok&#39; fish &amp;amp; chips";
  std::vector<int64_t> ids = {ClipTokenizer::kStartOfText};
  for (int64_t i : hf.encode(text)) ids.push_back(i);
  ids.push_back(ClipTokenizer::kEndOfText);
  EXPECT_EQ(ids, (std::vector<int64_t>{49406, 797, 1946, 261, 6259, 282, 261, 3333, 282, 321, 261, 4725, 282, 5,
                                       258, 274, 280, 282, 2481, 5, 258, 274, 280, 282, 2759, 261, 6259, 282,
                                       6259, 282, 8855, 49407}));
  EXPECT_EQ(with_ends(text),
            (std::vector<int64_t>{49406, 797, 1946, 261, 283, 321, 285, 262, 2481, 262, 2759, 261, 8855, 49407}));
  // Without entities both cleanings agree.
  EXPECT_EQ(hf.encode("A chest-xray image of cardiomegaly."), tok().encode("A chest-xray image of cardiomegaly."));
}

TEST(ClipTokenizer, CleaningAndPretokenisation) {
  EXPECT_EQ(ClipTokenizer::clean("  A\t\nB  &amp;amp;  C "), "a b & c");  // html.unescape twice
  EXPECT_EQ(ClipTokenizer::clean("Cafe\u0301"), "caf\u00e9");             // NFC
  EXPECT_EQ(tok().pretokenize("it's 2019!!"), (std::vector<std::string>{"it", "'s", "2", "0", "1", "9", "!!"}));
  EXPECT_TRUE(tok().encode("").empty());
  EXPECT_TRUE(tok().encode("   \n ").empty());
}

TEST(ClipTokenizer, DecodeInvertsEncode) {
  EXPECT_EQ(tok().decode(tok().encode("no acute cardiopulmonary process.")), "no acute cardiopulmonary process . ");
  EXPECT_EQ(tok().decode(tok().encode("größe café")), "größe café ");
  testing::expect_error_contains([] { tok().decode({49408}); }, {"49408"});
}

TEST(ClipTokenizer, BatchPaddingAndTruncation) {
  TokenizeOptions o;
  o.context_length = 8;
  o.pad_id = 0;
  int64_t L = 0;
  auto ids = tokenize_batch(tok(), {"a photo of a cat", "cat"}, o, &L);
  ASSERT_EQ(L, 8);
  EXPECT_EQ(ids, (std::vector<int64_t>{49406, 320, 1125, 539, 320, 2368, 49407, 0,  //
                                       49406, 2368, 49407, 0, 0, 0, 0, 0}));
  o.pad_longest = true;
  o.pad_id = ClipTokenizer::kEndOfText;
  ids = tokenize_batch(tok(), {"a photo of a cat", "cat"}, o, &L);
  ASSERT_EQ(L, 7);
  EXPECT_EQ(ids, (std::vector<int64_t>{49406, 320, 1125, 539, 320, 2368, 49407,  //
                                       49406, 2368, 49407, 49407, 49407, 49407, 49407}));
  // Truncation keeps SOT + the first L-2 ids + EOT.
  o.context_length = 5;
  o.pad_longest = false;
  ids = tokenize_batch(tok(), {"a photo of a cat"}, o, &L);
  EXPECT_EQ(ids, (std::vector<int64_t>{49406, 320, 1125, 539, 49407}));
  o.truncate = false;
  testing::expect_error_contains([&] { tokenize_batch(tok(), {"cat", "a photo of a cat"}, o, &L); },
                                 {"text 1", "7 tokens", "context_length 5"});
}

TEST(ClipTokenizer, MissingOrBrokenVocabIsDataError) {
  EXPECT_THROW(ClipTokenizer("/nonexistent/bpe.txt.gz"), DataError);
  testing::expect_error_contains([] { ClipTokenizer t("/nonexistent/bpe.txt.gz"); }, {"/nonexistent/bpe.txt.gz"});
  testing::TempDir dir;
  testing::write_text(dir / "short.txt", "#version: 0.2\ni n\nt h\n");
  testing::expect_error_contains([&] { ClipTokenizer t((dir / "short.txt").string()); }, {"short.txt", "only 2"});
  testing::write_text(dir / "bad.txt", "#version: 0.2\ni n\nthree symbols here\n");
  testing::expect_error_contains([&] { ClipTokenizer t((dir / "bad.txt").string()); }, {"bad.txt", "line 3"});
}

}  // namespace
}  // namespace daug::plugins::clip
