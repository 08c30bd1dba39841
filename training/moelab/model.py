"""Mixtral-architecture MoE language model (HF MixtralForCausalLM-compatible names).

RMSNorm (fp32), RoPE (rotate_half convention), grouped-query causal attention,
top-2 softmax routing with renormalisation, SwiGLU experts, load-balancing
auxiliary loss and router z-loss.
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    num_local_experts: int = 16
    num_experts_per_tok: int = 2
    max_position_embeddings: int = 1024
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    router_aux_loss_coef: float = 0.02
    router_z_loss_coef: float = 0.001

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.float() * x).to(dt)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_cos_sin(T, hd, theta, device):
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32, device=device) / hd))
    t = torch.arange(T, dtype=torch.float32, device=device)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        hd = c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(c.num_attention_heads * hd, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        c = self.c
        hd = c.head_dim
        q = self.q_proj(x).view(B, T, c.num_attention_heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, c.num_key_value_heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, c.num_key_value_heads, hd).transpose(1, 2)
        cos = cos.to(q.dtype)
        sin = sin.to(q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = c.num_attention_heads // c.num_key_value_heads
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        att = att.float() + mask
        att = att.softmax(-1).to(v.dtype)
        y = (att @ v).transpose(1, 2).reshape(B, T, c.num_attention_heads * hd)
        return self.o_proj(y)


class Expert(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.w1 = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.w2 = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)
        self.w3 = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class SparseMoE(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.gate = nn.Linear(c.hidden_size, c.num_local_experts, bias=False)
        self.experts = nn.ModuleList([Expert(c) for _ in range(c.num_local_experts)])

    def forward(self, x):
        B, T, D = x.shape
        c = self.c
        h = x.reshape(-1, D)
        logits = self.gate(h).float()  # [N, E]
        probs = logits.softmax(-1)
        topw, topi = probs.topk(c.num_experts_per_tok, dim=-1)  # sorted by weight, descending
        topw = topw / topw.sum(-1, keepdim=True)
        out = torch.zeros_like(h)
        flat_i = topi.reshape(-1)
        flat_w = topw.reshape(-1)
        order = torch.argsort(flat_i)
        counts = torch.bincount(flat_i, minlength=c.num_local_experts).tolist()
        tok = order // c.num_experts_per_tok
        start = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            sel = order[start:start + n]
            ti = tok[start:start + n]
            start += n
            y = self.experts[e](h[ti]) * flat_w[sel].unsqueeze(-1).to(h.dtype)
            out.index_add_(0, ti, y)
        return out.view(B, T, D), logits, topi, topw


class DecoderLayer(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.block_sparse_moe = SparseMoE(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        m, logits, topi, topw = self.block_sparse_moe(self.post_attention_layernorm(x))
        return x + m, logits, topi, topw


class Inner(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(c) for _ in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class MixtralLM(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.apply(self._init)
        # scaled init for residual output projections
        for n, p in self.named_parameters():
            if n.endswith("o_proj.weight") or n.endswith("w2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.num_hidden_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, targets=None, return_routing=False):
        B, T = ids.shape
        c = self.c
        x = self.model.embed_tokens(ids)
        cos, sin = rope_cos_sin(T, c.head_dim, c.rope_theta, ids.device)
        mask = torch.full((T, T), float("-inf"), device=ids.device).triu(1)
        all_logits, all_topi, all_topw = [], [], []
        for layer in self.model.layers:
            x, rl, ti, tw = layer(x, cos, sin, mask)
            all_logits.append(rl)
            all_topi.append(ti)
            all_topw.append(tw)
        x = self.model.norm(x)
        logits = self.lm_head(x)
        res = {"logits": logits}
        if return_routing:
            res["topi"] = torch.stack(all_topi).view(len(all_topi), B, T, -1)
            res["topw"] = torch.stack(all_topw).view(len(all_topw), B, T, -1)
            res["router_logits"] = torch.stack(all_logits).view(len(all_logits), B, T, -1)
        if targets is not None:
            ce = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
            E = c.num_local_experts
            aux = 0.0
            z = 0.0
            for rl, ti in zip(all_logits, all_topi):
                p = rl.softmax(-1)
                f = torch.zeros(E, device=rl.device).scatter_add_(
                    0, ti.reshape(-1), torch.ones(ti.numel(), device=rl.device)) / ti.numel()
                aux = aux + E * (f * p.mean(0)).sum()
                z = z + torch.logsumexp(rl, -1).pow(2).mean()
            aux = aux / len(all_logits)
            z = z / len(all_logits)
            res["ce"] = ce
            res["aux"] = aux
            res["z"] = z
            res["loss"] = ce + c.router_aux_loss_coef * aux + c.router_z_loss_coef * z
        return res
