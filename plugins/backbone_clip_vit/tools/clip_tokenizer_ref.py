#!/usr/bin/env python3
"""Independent reference for the C++ CLIP tokenizer test ids (plugins/backbone_clip_vit/clip_tokenizer_test.cpp).

Used now for the `hf` cleaning ids (--hf). The `openai` cleaning's expected ids come from OpenAI's real
simple_tokenizer.py with ftfy (tools/openai_cleaning_corpus.py), since this stand-in applies only ftfy's NFC step.

Follows openai/CLIP clip/simple_tokenizer.py literally, using only the standard library:
  * ftfy is not available: only its NFC step is applied (unicodedata.normalize), as the C++ code does;
  * the `regex` module is not available: the pattern
        <\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+
    is emulated by a scanner trying the alternatives in order at each position (as regex.findall does), with
    \\p{L} / \\p{N} taken from unicodedata categories (L*, N*) and \\s from str.isspace().

Usage: python3 clip_tokenizer_ref.py [--hf] [path/to/bpe_simple_vocab_16e6.txt.gz] < texts (one per line)
  --hf: skip html.unescape, as Hugging Face's CLIPTokenizerFast normaliser (NFC, whitespace, lowercase) does.
Prints one line per text: the ids including 49406 / 49407.
"""
import gzip
import html
import os
import re
import sys
import unicodedata
from functools import lru_cache


@lru_cache()
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    cs = [chr(n) for n in cs]
    return dict(zip(bs, cs))


def get_pairs(word):
    pairs = set()
    prev_char = word[0]
    for char in word[1:]:
        pairs.add((prev_char, char))
        prev_char = char
    return pairs


HTML_UNESCAPE = True


def basic_clean(text):
    text = unicodedata.normalize("NFC", text)  # stand-in for ftfy.fix_text
    if HTML_UNESCAPE:
        text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = re.sub(r'\s+', ' ', text)
    text = text.strip()
    return text


def is_L(c):
    return unicodedata.category(c).startswith("L")


def is_N(c):
    return unicodedata.category(c).startswith("N")


SPECIAL = ["<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]


def findall(text):
    """regex.findall(pat, text) for CLIP's pattern (text is already lower-case)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        matched = None
        for lit in SPECIAL:
            if text.startswith(lit, i):
                matched = lit
                break
        if matched is None:
            if is_L(text[i]):
                j = i
                while j < n and is_L(text[j]):
                    j += 1
                matched = text[i:j]
            elif is_N(text[i]):
                matched = text[i]
            elif not text[i].isspace():
                j = i
                while j < n and not text[j].isspace() and not is_L(text[j]) and not is_N(text[j]):
                    j += 1
                matched = text[i:j]
        if matched is None:
            i += 1
        else:
            out.append(matched)
            i += len(matched)
    return out


class SimpleTokenizer(object):
    def __init__(self, bpe_path):
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        merges = gzip.open(bpe_path).read().decode("utf-8").split('\n')
        merges = merges[1:49152 - 256 - 2 + 1]
        merges = [tuple(merge.split()) for merge in merges]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + '</w>' for v in vocab]
        for merge in merges:
            vocab.append(''.join(merge))
        vocab.extend(['<|startoftext|>', '<|endoftext|>'])
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {'<|startoftext|>': '<|startoftext|>', '<|endoftext|>': '<|endoftext|>'}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + '</w>',)
        pairs = get_pairs(word)

        if not pairs:
            return token + '</w>'

        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float('inf')))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break

                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            new_word = tuple(new_word)
            word = new_word
            if len(word) == 1:
                break
            else:
                pairs = get_pairs(word)
        word = ' '.join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        bpe_tokens = []
        text = whitespace_clean(basic_clean(text)).lower()
        for token in findall(text):
            token = ''.join(self.byte_encoder[b] for b in token.encode('utf-8'))
            bpe_tokens.extend(self.encoder[bpe_token] for bpe_token in self.bpe(token).split(' '))
        return bpe_tokens


def main():
    global HTML_UNESCAPE
    args = sys.argv[1:]
    if args and args[0] == "--hf":
        HTML_UNESCAPE = False
        args = args[1:]
    here = os.path.dirname(os.path.abspath(__file__))
    path = args[0] if args else os.path.join(here, "..", "vocab", "bpe_simple_vocab_16e6.txt.gz")
    tok = SimpleTokenizer(path)
    for line in sys.stdin.read().split("\n"):
        if not line:
            continue
        ids = [49406] + tok.encode(line) + [49407]
        print(", ".join(str(i) for i in ids))


if __name__ == "__main__":
    main()
