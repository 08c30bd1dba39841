"""Step 2: train the byte-level BPE tokenizer and tokenize the corpus.

Writes models/moe-lab-tiny/tokenizer.json, tokenizer_config.json and
training/work/tokens/<domain>.{train,heldout}.npy (uint16, documents separated by </s>).
"""
import argparse, json, os, random, sys, time
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moelab import bpe
from build_corpus import DOMAINS


def load(path):
    return [json.loads(l)["text"] for l in open(path, encoding="utf-8")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="training/work/corpus")
    ap.add_argument("--out-tokens", default="training/work/tokens")
    ap.add_argument("--model-dir", default="models/moe-lab-tiny")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--sample-chars", type=int, default=700_000, help="characters per domain used to learn merges")
    args = ap.parse_args()
    os.makedirs(args.out_tokens, exist_ok=True)
    os.makedirs(args.model_dir, exist_ok=True)
    rnd = random.Random(0)
    sample = []
    for d in DOMAINS:
        docs = load(f"{args.corpus}/{d}.train.jsonl")
        rnd.shuffle(docs)
        n = 0
        for t in docs:
            if n > args.sample_chars:
                break
            sample.append(t)
            n += len(t)
    t0 = time.time()
    vocab, merges = bpe.train(sample, args.vocab_size)
    print(f"trained BPE: {len(vocab)} tokens, {len(merges)} merges in {time.time()-t0:.0f}s", flush=True)
    tok = bpe.BPE(vocab, merges)
    json.dump(tok.to_hf_json(), open(f"{args.model_dir}/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=False)
    json.dump({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": None,
        "add_bos_token": False, "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1024,
    }, open(f"{args.model_dir}/tokenizer_config.json", "w"), indent=2)
    stats = {}
    for d in DOMAINS:
        for split in ("train", "heldout"):
            docs = load(f"{args.corpus}/{d}.{split}.jsonl")
            ids = []
            nchars = 0
            for t in docs:
                ids.extend(tok.encode(t))
                ids.append(bpe.EOS_ID)
                nchars += len(t)
            arr = np.array(ids, dtype=np.uint16)
            np.save(f"{args.out_tokens}/{d}.{split}.npy", arr)
            stats[f"{d}.{split}"] = {"tokens": int(arr.size), "chars": nchars, "chars_per_token": round(nchars / max(1, arr.size), 3)}
            print(d, split, stats[f"{d}.{split}"], flush=True)
    json.dump(stats, open(f"{args.out_tokens}/stats.json", "w"), indent=1)


if __name__ == "__main__":
    main()
