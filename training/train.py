"""Step 3: train the MoE model under a wall-clock budget; checkpoints periodically
and resumes from training/work/run/ckpt.pt when rerun with the same command."""
import argparse, json, math, os, sys, time
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moelab.model import Config, MixtralLM
from moelab import bpe

MIX = {"en": 0.24, "python": 0.17, "js": 0.17, "es": 0.16, "zh": 0.14, "ru": 0.06, "arith": 0.06}


class Sampler:
    def __init__(self, tokdir, split, T):
        self.T = T
        self.data = {d: np.load(f"{tokdir}/{d}.{split}.npy").astype(np.int64) for d in MIX}
        self.starts = {d: np.flatnonzero(a == bpe.EOS_ID) + 1 for d, a in self.data.items()}

    def window(self, d, rng):
        a = self.data[d]
        s = int(rng.integers(0, len(a) - self.T - 1))
        if rng.random() < 0.5:  # half of the windows begin at a document start
            st = self.starts[d]
            k = np.searchsorted(st, s)
            if k < len(st) and st[k] < len(a) - self.T - 1:
                s = int(st[k])
        return a[s:s + self.T + 1]

    def batch(self, B, rng):
        doms = list(MIX)
        p = np.array([MIX[d] for d in doms])
        ch = rng.choice(len(doms), size=B, p=p / p.sum())
        x = np.stack([self.window(doms[i], rng) for i in ch])
        return torch.from_numpy(x)


def lr_at(frac, step, peak, warmup, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = min(1.0, frac)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))


@torch.no_grad()
def quick_eval(model, held, rng, n=6, bf16=True):
    model.eval()
    out = {}
    for d in MIX:
        x = torch.stack([torch.from_numpy(held.window(d, rng)) for _ in range(n)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            r = model(x[:, :-1], x[:, 1:])
        out[d] = round(float(r["ce"]), 4)
    model.train()
    out["mean"] = round(sum(out.values()) / len(MIX), 4)
    return out


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="training/work/tokens")
    ap.add_argument("--run", default="training/work/run")
    ap.add_argument("--curve", default="training/curve.jsonl", help="small tracked file with the training curve")
    ap.add_argument("--minutes", type=float, default=95.0, help="wall-clock training budget (minutes)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=float, default=4.0, help="minutes")
    ap.add_argument("--eval-every", type=float, default=5.0, help="minutes")
    ap.add_argument("--fp32", action="store_true", help="disable bf16 autocast")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.run, exist_ok=True)
    ckpt_path = f"{args.run}/ckpt.pt"
    vocab = json.load(open("models/moe-lab-tiny/tokenizer.json", encoding="utf-8"))["model"]["vocab"]
    cfg = Config(vocab_size=len(vocab), num_hidden_layers=args.layers, max_position_embeddings=1024)
    torch.manual_seed(args.seed)
    model = MixtralLM(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    nodecay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    step, elapsed, tokens_seen = 0, 0.0, 0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed, tokens_seen = ck["step"], ck["elapsed"], ck["tokens"]
        print(f"resumed at step {step}, {elapsed/60:.1f} min, {tokens_seen} tokens", flush=True)
    if os.path.exists(f"{args.run}/DONE"):
        print("training already finished")
        return
    json.dump({"config": cfg.to_dict(), "args": vars(args), "mix": MIX}, open(f"{args.run}/run.json", "w"), indent=1)
    train = Sampler(args.tokens, "train", args.seq)
    held = Sampler(args.tokens, "heldout", args.seq)
    budget = args.minutes * 60
    log = open(f"{args.run}/log.jsonl", "a")
    curve = open(args.curve, "a")
    bf16 = not args.fp32
    t_last = time.time()
    last_ckpt = last_eval = elapsed
    acc = {"loss": 0.0, "ce": 0.0, "aux": 0.0, "z": 0.0, "n": 0}

    def save():
        atomic_save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                     "elapsed": elapsed, "tokens": tokens_seen, "config": cfg.to_dict()}, ckpt_path)

    model.train()
    while elapsed < budget:
        rng = np.random.default_rng(args.seed * 1_000_003 + step)
        x = train.batch(args.batch, rng)
        lr = lr_at(elapsed / budget, step, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            r = model(x[:, :-1], x[:, 1:])
        r["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        now = time.time()
        elapsed += now - t_last
        t_last = now
        step += 1
        tokens_seen += args.batch * args.seq
        for k in ("loss", "ce", "aux", "z"):
            acc[k] += float(r[k])
        acc["n"] += 1
        if step % 20 == 0:
            rec = {"step": step, "min": round(elapsed / 60, 2), "tokens": tokens_seen, "lr": round(lr, 6),
                   **{k: round(acc[k] / acc["n"], 4) for k in ("loss", "ce", "aux", "z")},
                   "tok_per_s": round(tokens_seen / max(elapsed, 1e-9))}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            acc = {"loss": 0.0, "ce": 0.0, "aux": 0.0, "z": 0.0, "n": 0}
        if elapsed - last_eval >= args.eval_every * 60 or step == 1:
            ev = quick_eval(model, held, np.random.default_rng(12345), bf16=bf16)
            rec = {"step": step, "min": round(elapsed / 60, 2), "tokens": tokens_seen, "train_ce": round(float(r["ce"]), 4), "heldout_ce": ev}
            curve.write(json.dumps(rec) + "\n")
            curve.flush()
            print("EVAL", json.dumps(rec), flush=True)
            last_eval = elapsed
            t_last = time.time()  # do not count evaluation time as training time
        if elapsed - last_ckpt >= args.ckpt_every * 60:
            save()
            last_ckpt = elapsed
            t_last = time.time()
    ev = quick_eval(model, held, np.random.default_rng(12345), bf16=bf16)
    curve.write(json.dumps({"step": step, "min": round(elapsed / 60, 2), "tokens": tokens_seen, "heldout_ce": ev, "final": True}) + "\n")
    curve.flush()
    save()
    open(f"{args.run}/DONE", "w").write(json.dumps({"step": step, "minutes": elapsed / 60, "tokens": tokens_seen}))
    print("done", step, tokens_seen, flush=True)


if __name__ == "__main__":
    main()
