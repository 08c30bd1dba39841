"""Writes training/work/tok_check.json: Python-side token ids of samples for verify_tokenizer.mjs."""
import json, os, random, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moelab import bpe
from build_corpus import DOMAINS

tok = bpe.BPE.load("models/moe-lab-tiny/tokenizer.json")
rnd = random.Random(7)
out = []
edge = ["Hello world ", "  two leading spaces", "tabs\tand\nnewlines\r\n", "12345 + 678 = 13023", "x=3.14159;", "emoji 🙂 ok",
        "Привет, мир!", "中文測試，好。", "¿Qué tal? ñandú", "def f(x):\n    return x ** 2\n", "const a = [1, 2, 3];", "", " ", "\n\n\n", "٣٤ ½ ² Ⅻ"]
for t in edge:
    out.append({"domain": "edge", "text": t, "ids": tok.encode(t)})
for d in DOMAINS:
    for split in ("train", "heldout"):
        docs = [json.loads(l)["text"] for l in open(f"training/work/corpus/{d}.{split}.jsonl", encoding="utf-8")]
        for t in rnd.sample(docs, min(25, len(docs))):
            out.append({"domain": d, "text": t, "ids": tok.encode(t)})
for t in out:
    assert tok.decode(t["ids"]) == t["text"], t["text"][:50]
json.dump(out, open("training/work/tok_check.json", "w"), ensure_ascii=False)
print(len(out), "samples")
