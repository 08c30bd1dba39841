import json, os
import torch
from .model import Config, MixtralLM
from . import safetensors_io

MODEL_DIR = "models/moe-lab-tiny"


def load_exported(model_dir=MODEL_DIR):
    """The shipped model: exported fp16 weights upcast to fp32."""
    hf = json.load(open(os.path.join(model_dir, "config.json")))
    ck = json.load(open(os.path.join(model_dir, "training_config.json"))) if os.path.exists(os.path.join(model_dir, "training_config.json")) else {}
    cfg = Config(vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"], intermediate_size=hf["intermediate_size"],
                 num_hidden_layers=hf["num_hidden_layers"], num_attention_heads=hf["num_attention_heads"],
                 num_key_value_heads=hf["num_key_value_heads"], num_local_experts=hf["num_local_experts"],
                 num_experts_per_tok=hf["num_experts_per_tok"], max_position_embeddings=hf["max_position_embeddings"],
                 rms_norm_eps=hf["rms_norm_eps"], rope_theta=hf["rope_theta"])
    m = MixtralLM(cfg)
    sd = {k: v.float() for k, v in safetensors_io.load(os.path.join(model_dir, "model.safetensors")).items()}
    m.load_state_dict(sd)
    m.eval()
    return m, cfg


def load_checkpoint(path):
    ck = torch.load(path)
    cfg = Config(**ck["config"])
    m = MixtralLM(cfg)
    m.load_state_dict(ck["model"])
    m.eval()
    return m, cfg, ck
