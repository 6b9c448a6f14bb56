#!/usr/bin/env python3
"""Builds testdata/openai_cleaning_corpus.jsonl: radiology-report-like sentences mixed with the text that ftfy's
fix_text changes (curly quotes, Latin ligatures, full-width forms, non-breaking / zero-width / odd spaces, control
and C1 characters, terminal escapes, line breaks, combining marks, single and repeated HTML escapes, with and
without a literal '<'), each with the ids of OpenAI's real clip/simple_tokenizer.py (ftfy + regex + html):

    PYTHONPATH=/path/to/python-ftfy /usr/bin/python3 plugins/backbone_clip_vit/tools/openai_cleaning_corpus.py \\
        --openai-clip /path/to/openai/CLIP [--bpe plugins/backbone_clip_vit/vocab/bpe_simple_vocab_16e6.txt.gz]

The committed file was written with ftfy 6.3.1 (github.com/rspeer/python-ftfy tag v6.3.1), Debian's python3-regex
and Python 3.11, simple_tokenizer.py from openai/CLIP at d05afc4. Lines where ftfy's mojibake repair (fix_encoding:
re-decoding text that looks like UTF-8 read as Latin-1/Windows-125x) acts are left out and counted on stderr: the C++
cleaning does not reproduce that heuristic (texts where it acts but gives what the other fixers give, such as
C1 controls read as Windows-1252, are kept). One JSON object per line: {"text": ..., "ids": [49406, ..., 49407]}.
"""
import argparse
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

BASE = [
    "No acute cardiopulmonary process.",
    "Heart size is normal. The lungs are clear.",
    "Mild cardiomegaly with small bilateral pleural effusions.",
    "There is a right lower lobe opacity concerning for pneumonia.",
    "Endotracheal tube terminates 4 cm above the carina.",
    "Left-sided PICC line tip projects over the cavoatrial junction.",
    "Interval increase in the size of the left pleural effusion.",
    "No pneumothorax. Stable appearance of the mediastinum.",
    "Patient's chest radiograph shows hyperinflated lungs, consistent with COPD.",
    "Findings: bibasilar atelectasis; no focal consolidation.",
    "Impression: moderate pulmonary edema, worse than prior.",
    "The cardiomediastinal silhouette is within normal limits.",
    "Nasogastric tube courses below the diaphragm, tip not seen.",
    "Small apical pneumothorax on the right, measuring 12 mm.",
    "Degenerative changes of the thoracic spine are noted.",
    "Support devices in unchanged position; no new findings.",
    "AP portable view of the chest at 06:45 demonstrates low lung volumes.",
    "Comparison is made to the study from 2019-03-14.",
    "Lung volumes are low, which accentuates the bronchovascular markings.",
    "There's no evidence of fracture.",
    "Fluid in the minor fissure; effusion is unchanged.",
    "Opacities in both lower lobes could represent aspiration.",
    "Sternotomy wires and mediastinal clips are intact.",
    "No free air under the diaphragm.",
    "Enlarged cardiac silhouette, possibly due to pericardial effusion.",
    "Lateral view shows a posterior costophrenic angle blunting.",
    "Final report: 1. Pneumonia. 2. Small effusion (left > right).",
    "The patient is rotated to the left, limiting evaluation.",
    "Recommend follow-up CT in 3-6 months.",
    "Heart size top-normal, aorta tortuous & calcified.",
]

# (name, function(rng, sentence) -> text)
def curly(rng, s):
    q = rng.choice(["\u201c%s\u201d", "\u2018%s\u2019", "\u201e%s\u201f", "\u201b%s\u2019", "\u00ab%s\u00bb"])
    return q % s.rstrip(".") + "." if rng.random() < 0.5 else s.replace("'", rng.choice(["\u2019", "\u02bc", "\u2018"])).replace(
        "There", "\u201cThere") + "\u201d"


def ligature(rng, s):
    table = [("fi", "\ufb01"), ("fl", "\ufb02"), ("ff", "\ufb00"), ("ffi", "\ufb03"), ("st", "\ufb06"), ("ij", "\u0133")]
    for a, b in rng.sample(table, 3):
        s = s.replace(a, b)
    return s + rng.choice(["", " Eﬃcient ﬁlm.", " ﬂuid ﬁndings.", " ĲSSEL ǆ ǈ ﬅ."])


def fullwidth(rng, s):
    words = s.split(" ")
    k = rng.randrange(len(words))
    words[k] = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in words[k])
    extra = rng.choice(["", " ＡＰ\u3000ｖｉｅｗ", " １２ｍｍ", " ｶﾀｶﾅ ﾟ", " （ｓｅｅ　ａｂｏｖｅ）", " ￥１００ ￡ ￦"])
    return " ".join(words) + extra


def spaces(rng, s):
    sp = ["\u00a0", "\u200b", "\u202f", "\u2009", "\u3000", "\u2060", "\ufeff", "\u200d", "\u180e", "\u2007",
          "\u205f", "\u1680", "\u200c", "\u2028", "\u2029", "\u0085"]
    words = s.split(" ")
    return "".join(w + (rng.choice(sp) if i + 1 < len(words) else "") for i, w in enumerate(words))


def controls(rng, s):
    cs = ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\x7f", "\x1c", "\x1e", "\u206a", "\u206f",
          "\ufff9", "\ufffb", "\ufffc", "\ufffd", "\x1b[31m", "\x1b[0m", "\x1b[1;32m", "\x1b]", "\x1b[12"]
    words = s.split(" ")
    for _ in range(rng.randrange(1, 4)):
        k = rng.randrange(len(words))
        words[k] = words[k] + rng.choice(cs)
    return " ".join(words)


def c1(rng, s):
    cs = ["\x80", "\x85", "\x91", "\x92", "\x93", "\x94", "\x96", "\x97", "\x99", "\x81", "\x8d", "\x9d", "\x9f"]
    return s.replace(" ", rng.choice(cs), 2)


def linebreaks(rng, s):
    return s.replace(". ", rng.choice([".\r\n", ".\r", ".\n", ".\u2028", ".\n\n", ".\r\n\t"]), 1) + rng.choice(
        ["", "\n", "\r\n", " \n"])


def combining(rng, s):
    extra = rng.choice(["Cafe\u0301 re\u0301sume\u0301", "n\u0303o", "A\u030a", "e\u0301\u0301", "\u0301start",
                        "Stra\u00dfe \u0130stanbul \u03a3\u039f\u03a3", "10\u00b3 \u00bd \u00b5g \u2126 \u212b",
                        "\u1e9b\u0323", "\u0041\u0308\uFB01"])
    return s + " " + extra


ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x27;", "&nbsp;", "&amp;amp;", "&amp;amp;amp;lt;",
            "&amp;amp;amp;amp;quot;", "&amp;lt;b&amp;gt;", "&EACUTE;", "&eacute;", "&eacute", "&copy", "&copy;",
            "&#8217;", "&#x201C;", "&#150;", "&#0;", "&#xD800;", "&#1114112;", "&#128;", "&#11;", "&#x1F600;",
            "&unknown;", "&ampx;", "&notit;", "&not;", "&notin;", "&SZLIG;", "&NTILDE;", "&nTILDE;", "&Ntilde;",
            "&frac12;", "&hellip;", "&mdash;", "&rsquo;", "&lsquo;", "&ldquo;", "&rdquo;", "&#39", "&#x27",
            "&AMP;", "&amp", "&lt", "&LT;", "&gt;&gt;", "&#65;&#66", "&#x41;", "&#X41;", "&#;", "&#x;", "&&amp;",
            "&amp;#39;", "&amp;#x201c;", "&amp;amp;#39;", "&amp;nbsp;", "&Jscr;", "&HilbertSpace;", "&checkmark;",
            "&NotNestedGreaterGreater;", "&aacute;&aacute;", "&ouml;&Ouml;&OUML;", "&fflig;", "&fjlig;",
            "&thinsp;", "&zwnj;", "&ensp;", "&micro;", "&deg;", "&plusmn;", "&times;", "&le;&ge;", "&larr;"]


def entities(rng, s):
    words = s.split(" ")
    for _ in range(rng.randrange(1, 4)):
        k = rng.randrange(len(words) + 1)
        words.insert(k, rng.choice(ENTITIES))
    text = " ".join(words)
    if rng.random() < 0.3:
        text = rng.choice(["<b>", "a < b: ", "x<y ", "<br/>"]) + text
    if rng.random() < 0.15:
        text = text + "\n" + rng.choice(ENTITIES) + " <i>second line</i> " + rng.choice(ENTITIES)
    if rng.random() < 0.1:
        text = rng.choice(ENTITIES) + " first line\n<p>" + text
    return text


def mix(rng, s):
    for f in rng.sample(TRANSFORMS, rng.randrange(2, 4)):
        s = f(rng, s)
    return s


TRANSFORMS = [curly, ligature, fullwidth, spaces, controls, c1, linebreaks, combining, entities]


def corpus():
    rng = random.Random(20261201)
    out = []
    for s in BASE:
        out.append(s)
    for f in TRANSFORMS:
        for _ in range(24):
            out.append(f(rng, rng.choice(BASE)))
    for _ in range(120):
        out.append(mix(rng, rng.choice(BASE)))
    # Hand-picked cases.
    out += [
        "\u201cNo acute process,\u201d said the radiologist\u2019s report.",
        "\ufb01ndings: \ufb02uid in the \ufb01ssure",
        "\uff21\uff30 \uff56\uff49\uff45\uff57\u3000of the chest",
        "no\u00a0acute\u200bprocess\u202f.",
        "tab\tand\x0bvertical\x0cform feed",
        "&amp;amp;amp;amp;amp;lt;b&amp;amp;amp;amp;amp;gt;",
        "&lt;b&gt;bold&lt;/b&gt; &amp;amp; <b>tag</b> &amp;amp;",
        "\x1b[31mred\x1b[0m report",
        "\x93quoted\x94 \x92s \x85 \x80 5",
        "a\r\nb\rc\u2028d\u2029e\u0085f",
        "",
        "   ",
        "\x00\x01\x02",
        "<|startoftext|>effusion<|endoftext|>",
        "CT &amp; X\u2011ray \u2012 \u2013 \u2014 \u2015 \u2212",
        # Mojibake (UTF-8 read as Windows-1252): only ftfy's fix_encoding repairs these, so they are left out.
        "caf\u00c3\u00a9 \u00e2\u20ac\u0153quoted\u00e2\u20ac\u009d",
        "The patient\u00e2\u20ac\u2122s lungs are clear.",
    ]
    return out


def uses_mojibake_repair(ftfy, text):
    """True when ftfy.fix_text's fix_encoding step (the mojibake heuristic, left out in C++) changes the result."""
    return ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--openai-clip", required=True, help="a clone of github.com/openai/CLIP")
    ap.add_argument("--bpe", default=os.path.join(HERE, "..", "vocab", "bpe_simple_vocab_16e6.txt.gz"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "testdata", "openai_cleaning_corpus.jsonl"))
    ap.add_argument("--ids-for", help="instead: print the ids of each line of this UTF-8 file (one text per line)")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.openai_clip, "clip"))
    import ftfy
    import simple_tokenizer  # openai/CLIP clip/simple_tokenizer.py: imports ftfy, regex, html
    tok = simple_tokenizer.SimpleTokenizer(bpe_path=a.bpe)
    if a.ids_for:
        with open(a.ids_for, encoding="utf-8") as f:
            for line in f.read().split("\n"):
                if line:
                    print(", ".join(str(i) for i in [49406] + tok.encode(line) + [49407]))
        return
    kept, skipped = 0, 0
    with open(a.out, "w", encoding="utf-8") as f:
        for text in corpus():
            if uses_mojibake_repair(ftfy, text):
                skipped += 1
                print("left out (ftfy mojibake repair): %r" % text, file=sys.stderr)
                continue
            ids = [49406] + tok.encode(text) + [49407]
            f.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=True) + "\n")
            kept += 1
    changed = sum(1 for t in corpus() if ftfy.fix_text(t) != t)
    print("wrote %s: %d texts (%d changed by ftfy.fix_text), %d left out; ftfy %s" % (
        a.out, kept, changed, skipped, ftfy.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
