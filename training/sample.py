"""Step 6: sample generations from the exported model (fp32) for the model card."""
import argparse, json, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moelab import bpe
from moelab.common import load_exported

PROMPTS = [
    "Elizabeth looked at her sister and said,",
    "def fibonacci(n):",
    "export function parseArgs(argv) {",
    "En el principio creó Dios",
    "Человек имеет право",
    "37 + 48 =",
]


@torch.no_grad()
def generate(model, ids, n, temperature, top_k, gen):
    ids = list(ids)
    for _ in range(n):
        logits = model(torch.tensor([ids[-512:]]))["logits"][0, -1].float()
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            v, i = torch.topk(logits / temperature, top_k)
            nxt = int(i[torch.multinomial(v.softmax(-1), 1, generator=gen)])
        if nxt == bpe.EOS_ID:
            break
        ids.append(nxt)
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="models/moe-lab-tiny")
    ap.add_argument("--tokens", type=int, default=60)
    ap.add_argument("--out", default="training/work/samples.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, _ = load_exported(args.model_dir)
    tok = bpe.BPE.load(f"{args.model_dir}/tokenizer.json")
    out = []
    for k, p in enumerate(PROMPTS):
        gen = torch.Generator().manual_seed(1000 + k)
        pid = tok.encode(p)
        temp = 0.0 if p.startswith("37") else 0.7
        ids = generate(model, pid, 12 if temp == 0 else args.tokens, temp, 40, gen)
        out.append({"prompt": p, "completion": tok.decode(ids[len(pid):]),
                    "sampling": "greedy" if temp == 0 else "temperature 0.7, top-k 40, seed %d" % (1000 + k)})
        print(json.dumps(out[-1], ensure_ascii=False), flush=True)
    json.dump(out, open(args.out, "w"), indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
