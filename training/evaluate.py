"""Step 5: held-out loss per domain and routing analysis of the exported model.

Runs the exported weights (fp16 upcast to fp32) over consecutive 256-token windows of each
domain's held-out split (documents never used in training). Writes training/work/eval.json.
"""
import argparse, json, math, os, sys, time
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moelab.common import load_exported
from moelab.model import MixtralLM
from train import MIX

DOMAINS = list(MIX)


def entropy(p):
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def mutual_information(counts):
    """counts: [domains, experts] -> MI in bits, with each domain weighted equally."""
    pd = counts / counts.sum(1, keepdims=True)  # p(e|d)
    pe = pd.mean(0)
    return entropy(pe) - float(np.mean([entropy(r) for r in pd]))


def js_divergence(p, q):
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)
    return entropy(m) - 0.5 * (entropy(p) + entropy(q))


@torch.no_grad()
def run(model, cfg, windows, bf16):
    L, E = cfg.num_hidden_layers, cfg.num_local_experts
    res = {}
    for d, x in windows.items():
        nll, n = 0.0, 0
        counts = np.zeros((L, E))
        for i in range(0, len(x), 8):
            xb = x[i:i + 8]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                r = model(xb[:, :-1], return_routing=True)
            lp = torch.log_softmax(r["logits"].float(), -1)
            tgt = xb[:, 1:]
            nll += float(-lp.gather(-1, tgt.unsqueeze(-1)).sum())
            n += tgt.numel()
            ti = r["topi"].reshape(L, -1)
            for l in range(L):
                counts[l] += np.bincount(ti[l].numpy(), minlength=E)
        res[d] = {"loss": nll / n, "tokens": n, "counts": counts}
    return res


def analyse(res, L, E):
    counts = np.stack([res[d]["counts"] for d in DOMAINS], 1)  # [L, D, E]
    mi = [mutual_information(counts[l]) for l in range(L)]
    top = {}
    for l in range(L):
        top[l] = {}
        for di, d in enumerate(DOMAINS):
            share = counts[l, di] / counts[l, di].sum()
            order = np.argsort(-share)[:3]
            top[l][d] = [[int(e), round(float(share[e]), 3)] for e in order]
    ru, py = DOMAINS.index("ru"), DOMAINS.index("python")
    jsd = [js_divergence(counts[l, ru], counts[l, py]) for l in range(L)]
    usage = (counts / counts.sum(2, keepdims=True)).round(4).tolist()
    return {"mi_bits": [round(v, 4) for v in mi], "top_experts": top, "js_ru_python_bits": [round(v, 4) for v in jsd],
            "usage": usage, "domains": DOMAINS}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="training/work/tokens")
    ap.add_argument("--windows", type=int, default=48, help="256-token windows per domain")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (faster) instead of fp32")
    ap.add_argument("--out", default="training/work/eval.json")
    ap.add_argument("--model-dir", default="models/moe-lab-tiny")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    model, cfg = load_exported(args.model_dir)
    windows = {}
    for d in DOMAINS:
        a = np.load(f"{args.tokens}/{d}.heldout.npy").astype(np.int64)
        T = args.seq + 1
        nwin = min(args.windows, (len(a) - 1) // args.seq)
        windows[d] = torch.from_numpy(np.stack([a[i * args.seq:i * args.seq + T] for i in range(nwin)]))
    res = run(model, cfg, windows, args.bf16)
    out = {"loss": {d: round(res[d]["loss"], 4) for d in DOMAINS},
           "tokens": {d: res[d]["tokens"] for d in DOMAINS}}
    out["mean_loss"] = round(float(np.mean(list(out["loss"].values()))), 4)
    out["routing"] = analyse(res, cfg.num_hidden_layers, cfg.num_local_experts)
    # baseline: same architecture, random initialisation
    torch.manual_seed(0)
    rnd = MixtralLM(cfg).eval()
    rres = run(rnd, cfg, {d: w[:8] for d, w in windows.items()}, args.bf16)
    out["random_init_mi_bits"] = analyse(rres, cfg.num_hidden_layers, cfg.num_local_experts)["mi_bits"]
    out["precision"] = "bf16 autocast" if args.bf16 else "fp32"
    out["seconds"] = round(time.time() - t0, 1)
    json.dump(out, open(args.out, "w"), indent=1)
    print(json.dumps({k: out[k] for k in ("loss", "mean_loss")}))
    print("MI bits per layer", out["routing"]["mi_bits"], "random init", out["random_init_mi_bits"])
    print("JS ru-python per layer", out["routing"]["js_ru_python_bits"])


if __name__ == "__main__":
    main()
