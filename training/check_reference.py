"""Independent check of the shipped model: a NumPy implementation of the Hugging Face Mixtral forward pass
(written from the HF conventions, sharing no code with moelab.model) reads config.json and model.safetensors,
runs the reference prompts in fp32 and compares with reference/*.f32 / *.i32."""
import json, os, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moelab import safetensors_io

M = sys.argv[1] if len(sys.argv) > 1 else "models/moe-lab-tiny"
cfg = json.load(open(f"{M}/config.json"))
W = {k: v.float().numpy() for k, v in safetensors_io.load(f"{M}/model.safetensors").items()}
D, H, KV, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
eps, E, K = cfg["rms_norm_eps"], cfg["num_local_experts"], cfg["num_experts_per_tok"]


def rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1 + np.exp(-x))


def forward(ids):
    T = len(ids)
    x = W["model.embed_tokens.weight"][ids]
    inv = 1.0 / cfg["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float32) / hd)
    fr = np.outer(np.arange(T, dtype=np.float32), inv)
    cos, sin = np.cos(np.concatenate([fr, fr], -1)), np.sin(np.concatenate([fr, fr], -1))
    rot = lambda t: np.concatenate([-t[..., hd // 2:], t[..., :hd // 2]], -1)
    topk_ids, topk_w = [], []
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd).transpose(1, 0, 2)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd).transpose(1, 0, 2)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).reshape(T, KV, hd).transpose(1, 0, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        out = np.zeros((H, T, hd), np.float32)
        for hh in range(H):
            kv = hh // (H // KV)
            s = q[hh] @ k[kv].T / np.sqrt(hd) + np.triu(np.full((T, T), -np.inf, np.float32), 1)
            a = np.exp(s - s.max(-1, keepdims=True))
            out[hh] = (a / a.sum(-1, keepdims=True)) @ v[kv]
        x = x + out.transpose(1, 0, 2).reshape(T, H * hd) @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        lg = h @ W[p + "block_sparse_moe.gate.weight"].T
        pr = np.exp(lg - lg.max(-1, keepdims=True))
        pr /= pr.sum(-1, keepdims=True)
        idx = np.argsort(-pr, -1, kind="stable")[:, :K]
        wt = np.take_along_axis(pr, idx, -1)
        wt /= wt.sum(-1, keepdims=True)
        moe = np.zeros_like(h)
        for t in range(T):
            for j in range(K):
                e = f"{p}block_sparse_moe.experts.{idx[t, j]}."
                y = (silu(h[t] @ W[e + "w1.weight"].T) * (h[t] @ W[e + "w3.weight"].T)) @ W[e + "w2.weight"].T
                moe[t] += wt[t, j] * y
        x = x + moe
        topk_ids.append(idx)
        topk_w.append(wt)
    x = rms(x, W["model.norm.weight"])
    return x[-1] @ W["lm_head.weight"].T, np.stack(topk_ids), np.stack(topk_w)


ref = json.load(open(f"{M}/reference/reference.json"))
ok = True
for p in ref["prompts"]:
    f = p["files"]
    rl = np.fromfile(f"{M}/reference/{f['last_logits']['file']}", "<f4")
    ri = np.fromfile(f"{M}/reference/{f['topk_ids']['file']}", "<i4").reshape(f["topk_ids"]["shape"])
    rw = np.fromfile(f"{M}/reference/{f['topk_weights']['file']}", "<f4").reshape(f["topk_weights"]["shape"])
    lg, ti, tw = forward(p["input_ids"])
    dl, same, dw = float(np.abs(lg - rl).max()), float((ti == ri).mean()), float(np.abs(tw - rw).max())
    print(f"{p['name']}: max|Δlogit| {dl:.2e}, top-k ids equal {same*100:.1f}%, max|Δweight| {dw:.2e}")
    ok &= dl < 1e-3 and same == 1.0 and dw < 1e-4
print("OK" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
