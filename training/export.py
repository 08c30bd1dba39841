"""Step 4: export the trained checkpoint to models/moe-lab-tiny in Hugging Face Mixtral format
and write PyTorch reference outputs (computed in fp32 from the exported fp16 weights)."""
import argparse, json, os, sys
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moelab import bpe, safetensors_io
from moelab.common import load_checkpoint, load_exported

PROMPTS = [
    ("english", "It is a truth universally acknowledged, that a single man in possession of a good fortune"),
    ("python", "import os\n\ndef read_lines(path):\n    with open(path) as f:"),
    ("russian", "Все люди рождаются свободными и равными в своем достоинстве и правах."),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default="training/work/run/ckpt.pt")
    ap.add_argument("--out", default="models/moe-lab-tiny")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, cfg, ck = load_checkpoint(args.ckpt)
    sd = model.state_dict()
    for k, v in sd.items():
        assert v.abs().max() < 60000, k
    tensors = {k: v.to(torch.float16) for k, v in sd.items()}
    os.makedirs(args.out, exist_ok=True)
    safetensors_io.save(tensors, f"{args.out}/model.safetensors")
    hf = {
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_position_embeddings,
        "initializer_range": 0.02,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "num_local_experts": cfg.num_local_experts,
        "num_experts_per_tok": cfg.num_experts_per_tok,
        "tie_word_embeddings": False,
        "use_cache": True,
        "bos_token_id": bpe.BOS_ID,
        "eos_token_id": bpe.EOS_ID,
        "pad_token_id": bpe.PAD_ID,
        "sliding_window": None,
        "attention_dropout": 0.0,
        "router_aux_loss_coef": cfg.router_aux_loss_coef,
        "router_jitter_noise": 0.0,
        "output_router_logits": False,
        "torch_dtype": "float16",
    }
    json.dump(hf, open(f"{args.out}/config.json", "w"), indent=2)
    json.dump({"bos_token_id": bpe.BOS_ID, "eos_token_id": bpe.EOS_ID, "pad_token_id": bpe.PAD_ID,
               "do_sample": True, "temperature": 0.8, "top_k": 40, "max_new_tokens": 128},
              open(f"{args.out}/generation_config.json", "w"), indent=2)
    print("exported", os.path.getsize(f"{args.out}/model.safetensors"), "bytes; step", ck["step"])

    # Reference outputs from the exported (fp16-rounded) weights, upcast to fp32, computed in fp32.
    m, _ = load_exported(args.out)
    tok = bpe.BPE.load(f"{args.out}/tokenizer.json")
    rdir = f"{args.out}/reference"
    os.makedirs(rdir, exist_ok=True)
    ref = {"description": "PyTorch fp32 reference outputs computed from the exported fp16 weights upcast to fp32. "
                          "Raw little-endian arrays. topk ids/weights: [num_layers, num_tokens, 2], "
                          "experts sorted by routing weight (descending), weights renormalised over the top-2.",
           "dtype_of_weights": "float16 upcast to float32", "add_bos_token": False, "prompts": []}
    with torch.no_grad():
        for name, text in PROMPTS:
            ids = tok.encode(text)
            r = m(torch.tensor([ids]), return_routing=True)
            last = r["logits"][0, -1].float().numpy().astype("<f4")
            ti = r["topi"][:, 0].numpy().astype("<i4")
            tw = r["topw"][:, 0].float().numpy().astype("<f4")
            last.tofile(f"{rdir}/{name}.last_logits.f32")
            ti.tofile(f"{rdir}/{name}.topk_ids.i32")
            tw.tofile(f"{rdir}/{name}.topk_weights.f32")
            top5 = torch.topk(torch.from_numpy(last.copy()), 5)
            ref["prompts"].append({
                "name": name, "text": text, "input_ids": ids,
                "files": {
                    "last_logits": {"file": f"{name}.last_logits.f32", "shape": [len(last)], "dtype": "float32"},
                    "topk_ids": {"file": f"{name}.topk_ids.i32", "shape": list(ti.shape), "dtype": "int32"},
                    "topk_weights": {"file": f"{name}.topk_weights.f32", "shape": list(tw.shape), "dtype": "float32"},
                },
                "last_top5_ids": top5.indices.tolist(),
                "last_top5_logits": [round(float(v), 5) for v in top5.values],
                "last_top5_tokens": [tok.decode([i]) for i in top5.indices.tolist()],
            })
    json.dump(ref, open(f"{rdir}/reference.json", "w"), indent=1, ensure_ascii=False)
    print("reference outputs written to", rdir)


if __name__ == "__main__":
    main()
