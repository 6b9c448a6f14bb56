#!/usr/bin/python3
"""Independent checks of `daug query --json` output against the index files, with numpy only.

  check_query.py text  INDEX_DIR TEXT_EMB.npy QUERY.json K   hits = top-K of embeddings @ text (from `daug embed`)
  check_query.py id    INDEX_DIR ID QUERY.json K             hits = top-K of embeddings @ embeddings[row of ID]
  check_query.py image INDEX_DIR ID QUERY.json K             an indexed image queried from its file finds itself
  check_query.py same  A.json B.json                          the same ranked rows (e.g. exact vs FAISS)
"""
import csv
import json
import sys

import numpy as np


def load(index):
    emb = np.load(f"{index}/embeddings.npy").astype(np.float32)
    with open(f"{index}/items.csv", newline="") as f:
        ids = [r["id"] for r in csv.DictReader(f)]
    return emb, ids


def expect_ranking(emb, q, hits, k, what):
    scores = emb @ q
    order = sorted(range(len(scores)), key=lambda r: (-scores[r], r))[:k]
    got = [h["row"] for h in hits]
    assert len(got) == min(k, len(scores)), f"{what}: {len(got)} hits, expected {min(k, len(scores))}"
    # Equal scores may come in either order; compare the score sequence exactly and the rows where scores differ.
    for i, h in enumerate(hits):
        assert abs(h["score"] - scores[order[i]]) < 1e-4, f"{what}: rank {i+1} score {h['score']} != {scores[order[i]]}"
        assert abs(h["score"] - scores[h["row"]]) < 1e-4, f"{what}: rank {i+1} row {h['row']} has score {scores[h['row']]}"
    assert all(hits[i]["score"] >= hits[i + 1]["score"] for i in range(len(hits) - 1)), f"{what}: not sorted"
    print(f"{what}: {len(got)} hits match numpy (top row {got[0]}, score {hits[0]['score']:.4f})")


def main():
    mode = sys.argv[1]
    if mode == "same":
        a, b = (json.load(open(p)) for p in sys.argv[2:4])
        ra, rb = [h["row"] for h in a["hits"]], [h["row"] for h in b["hits"]]
        assert ra == rb, f"{a['search']}: {ra}\n{b['search']}: {rb}"
        print(f"same top-{len(ra)}: {a['search']} and {b['search']}")
        return
    index, arg, qfile, k = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    emb, ids = load(index)
    out = json.load(open(qfile))
    assert out["count"] == len(ids)
    if mode == "text":
        t = np.load(arg).astype(np.float32)[0]
        expect_ranking(emb, t, out["hits"], k, "text query")
        assert "class_scores" not in out
    elif mode == "id":
        row = ids.index(arg)
        expect_ranking(emb, emb[row], out["hits"], k, "id query")
        assert out["hits"][0]["id"] == arg and abs(out["hits"][0]["score"] - 1) < 1e-4
        check_classes(index, emb[row], out)
    elif mode == "image":
        top = out["hits"][0]
        assert top["id"] == arg, f"image query of {arg}'s file: top hit {top['id']} ({top['score']})"
        assert top["score"] > 0.999, f"image query of {arg}'s file: self score {top['score']}"
        print(f"image query: finds itself first, score {top['score']:.6f}")
        assert len(out["class_scores"]) == 14
    else:
        raise SystemExit(f"unknown mode {mode}")


def check_classes(index, q, out):
    man = json.load(open(f"{index}/index.json"))
    cls = np.load(f"{index}/class_embeddings.npy").astype(np.float64)
    cos = cls @ q.astype(np.float64)
    prob = 1 / (1 + np.exp(-np.exp(man["class_logit_scale"]) * cos))
    got = {c["class"]: c["probability"] for c in out["class_scores"]}
    for name, p in zip(man["classes"], prob):
        assert abs(got[name] - p) < 1e-5, f"class {name}: {got[name]} != {p}"
    print(f"class scores match numpy (14 classes, max {prob.max():.4f})")


if __name__ == "__main__":
    main()
