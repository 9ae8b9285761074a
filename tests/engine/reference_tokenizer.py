#!/usr/bin/python3
"""Independent pure-Python byte-level BPE over an HF tokenizer.json (GPT-2 algorithm).

  reference_tokenizer.py MODEL_DIR STRINGS_JSON     # prints [{"text", "ids"}, ...]

Used to produce tests/engine/testdata/tokenizer_ids.json (the ids the C++ tokenizer must
reproduce) and for a live cross-check in tokenizer_test.cc. Needs Debian's python3-regex
(for \\p{L}); run with /usr/bin/python3.
"""
import json
import os
import re
import sys
import unicodedata

import regex


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class Bpe:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        model = tj["model"]
        assert model["type"] == "BPE"
        self.vocab = model["vocab"]
        self.ranks = {}
        for i, m in enumerate(model["merges"]):
            pair = tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m)
            self.ranks.setdefault(pair, i)
        self.added = {a["content"]: a["id"] for a in tj.get("added_tokens", [])}
        pre = tj["pre_tokenizer"]
        steps = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
        self.patterns = [regex.compile(s["pattern"]["Regex"]) for s in steps if s["type"] == "Split"]
        self.byte_enc = bytes_to_unicode()
        self.nfc = (tj.get("normalizer") or {}).get("type") == "NFC"

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            pairs = set(zip(parts, parts[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return [self.vocab[p] for p in parts]

    def split(self, pattern, text):
        out, last = [], 0
        for m in pattern.finditer(text):
            if m.start() > last:
                out.append(text[last : m.start()])
            if m.end() > m.start():
                out.append(m.group(0))
            last = m.end()
        if last < len(text):
            out.append(text[last:])
        return out

    def encode(self, text):
        ids = []
        if self.added:
            alt = "|".join(re.escape(t) for t in sorted(self.added, key=len, reverse=True))
            segments = re.split("(" + alt + ")", text)
        else:
            segments = [text]
        for seg in segments:
            if not seg:
                continue
            if seg in self.added:
                ids.append(self.added[seg])
                continue
            if self.nfc:
                seg = unicodedata.normalize("NFC", seg)
            pieces = [seg]
            for p in self.patterns:
                pieces = [q for piece in pieces for q in self.split(p, piece)]
            for piece in pieces:
                word = "".join(self.byte_enc[b] for b in piece.encode("utf-8"))
                ids.extend(self.bpe(word))
        return ids


def main():
    bpe = Bpe(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        strings = json.load(f)
    rows = [json.dumps({"text": s, "ids": bpe.encode(s)}, ensure_ascii=False) for s in strings]
    sys.stdout.write("[\n" + ",\n".join(rows) + "\n]\n")


if __name__ == "__main__":
    main()
