// Checks models/moe-lab-tiny/tokenizer.json with @huggingface/tokenizers:
//  1. decode(encode(x)) === x for every document of the corpus (train and held-out),
//  2. the JS ids equal the Python trainer's ids on the samples in training/work/tok_check.json.
// Usage (from the repository root): node training/verify_tokenizer.mjs
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

const modelDir = 'models/moe-lab-tiny';
const corpusDir = 'training/work/corpus';
const tok = new Tokenizer(
  JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8')),
  JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer_config.json'), 'utf8')),
);
const enc = (t) => tok.encode(t, { add_special_tokens: false }).ids;
const dec = (ids) => tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });

let docs = 0, bad = 0;
for (const f of fs.readdirSync(corpusDir).filter((f) => f.endsWith('.jsonl')).sort()) {
  for (const line of fs.readFileSync(path.join(corpusDir, f), 'utf8').split('\n')) {
    if (!line) continue;
    const { text } = JSON.parse(line);
    docs++;
    if (dec(enc(text)) !== text) {
      bad++;
      if (bad < 5) console.error(`round-trip mismatch in ${f}: ${JSON.stringify(text.slice(0, 80))}`);
    }
  }
}
console.log(`round-trip: ${docs - bad}/${docs} documents identical`);

const check = JSON.parse(fs.readFileSync('training/work/tok_check.json', 'utf8'));
let same = 0;
for (const s of check) {
  const ids = enc(s.text);
  if (ids.length === s.ids.length && ids.every((v, i) => Number(v) === s.ids[i])) same++;
  else if (check.length - same < 1e9) {
    const i = ids.findIndex((v, k) => Number(v) !== s.ids[k]);
    console.error(`id mismatch (${s.domain}) at ${i}: ${JSON.stringify(s.text.slice(0, 60))}`);
  }
}
console.log(`python==js ids: ${same}/${check.length} samples`);
const ok = bad === 0 && same === check.length;
fs.writeFileSync('training/work/tokenizer_check.json', JSON.stringify({ documents: docs, roundtrip_failures: bad, id_samples: check.length, id_matches: same, ok }));
process.exit(ok ? 0 : 1);
