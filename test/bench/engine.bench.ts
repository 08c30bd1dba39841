/**
 * `npm run bench` — engine throughput on a random-weight Mixtral-format checkpoint
 * (L=8, d=512, 8 heads / 8 KV heads, 8 experts of F=1024, vocab 8192), generated once and cached.
 * Prints prefill and decode speed, the cost of capturing routing, and peak RSS.
 * Targets (2 cores): decode ≥ 60 tok/s at context 16, ≤ 1.2× slower at 1024, routing overhead ≤ 5 %.
 */
import { join } from 'node:path';
import { generate } from '../../engine/generate/generate.ts';
import { argmax } from '../../engine/generate/sampling.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';
import { randomMixtral } from './random-checkpoint.ts';
import { peakRss } from '../../engine/runtime/memory.ts';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cacheDir = join(REPO_ROOT, '.cache', 'bench');

function prompt(n: number): number[] {
  return Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % 8000));
}

async function prefillMs(r: ModelRunner, n: number, reps: number): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    r.reset();
    ms.push((await r.step({ ids: prompt(n), logitIndex: [n - 1], routeBias: null, topK: 2 })).ms);
  }
  return median(ms);
}

/** Median ms of one greedy decode step with `context` positions already cached. */
async function decodeStepMs(r: ModelRunner, context: number, steps: number): Promise<number> {
  r.reset();
  let out = await r.step({ ids: prompt(context), logitIndex: [context - 1], routeBias: null, topK: 2 });
  const ms: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const next = argmax(out.logits);
    out = await r.step({ ids: [next], logitIndex: [0], routeBias: null, topK: 2 });
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const dir = await randomMixtral(join(cacheDir, 'mixtral-L8-d512-E8-F1024-V8192'), {
    layers: 8, hidden: 512, heads: 8, kvHeads: 8, experts: 8, topK: 2, ffn: 1024, vocab: 8192, context: 4096,
  });
  const withRouting = await ModelRunner.load(dir, { cacheDir });
  const plain = await ModelRunner.load(dir, { cacheDir, withoutRoutingOutputs: true });
  console.log(`checkpoint and graphs ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})`);

  // Warm up both sessions (first runs allocate arenas and pack weights).
  await prefillMs(withRouting, 128, 2);
  await prefillMs(plain, 128, 2);
  await decodeStepMs(withRouting, 16, 8);
  await decodeStepMs(plain, 16, 8);

  const prefill = await prefillMs(withRouting, 128, 7);
  const rows: [string, string][] = [['prefill, 128 tokens', `${((128 / prefill) * 1000).toFixed(0)} tok/s (${prefill.toFixed(1)} ms)`]];
  const decode: Record<number, number> = {};
  for (const ctx of [16, 256, 1024]) {
    decode[ctx] = await decodeStepMs(withRouting, ctx, 48);
    rows.push([`decode at context ${ctx}`, `${(1000 / decode[ctx]!).toFixed(1)} tok/s (${decode[ctx]!.toFixed(2)} ms/token)`]);
  }
  rows.push(['decode slowdown 1024 vs 16', `${(decode[1024]! / decode[16]!).toFixed(3)}×  (target ≤ 1.2×)`]);

  // Routing capture: the same graph with and without the routing outputs, interleaved to share noise,
  // alternating which goes first (the second of a pair runs on warmer caches), ratio of medians.
  const a: number[] = [];
  const b: number[] = [];
  const pa: number[] = [];
  const pb: number[] = [];
  for (let round = 0; round < 20; round++) {
    const first = round % 2 === 0 ? withRouting : plain;
    const second = first === withRouting ? plain : withRouting;
    const [x, y] = [await decodeStepMs(first, 16, 24), await decodeStepMs(second, 16, 24)];
    const [px, py] = [await prefillMs(first, 128, 1), await prefillMs(second, 128, 1)];
    (first === withRouting ? a : b).push(x);
    (first === withRouting ? b : a).push(y);
    (first === withRouting ? pa : pb).push(px);
    (first === withRouting ? pb : pa).push(py);
  }
  rows.push(['routing capture overhead (decode step)', `${(median(a) / median(b)).toFixed(3)}×  (${median(a).toFixed(2)} vs ${median(b).toFixed(2)} ms; target ≤ 1.05×)`]);
  rows.push(['routing capture overhead (prefill 128)', `${(median(pa) / median(pb)).toFixed(3)}×  (${median(pa).toFixed(1)} vs ${median(pb).toFixed(1)} ms)`]);

  // Diagnostic mode: the profiler on every step.
  const diag = await ModelRunner.load(dir, { cacheDir, diagnostics: true });
  await decodeStepMs(diag, 16, 8);
  const d: number[] = [];
  const n: number[] = [];
  for (let round = 0; round < 3; round++) {
    d.push(await decodeStepMs(diag, 16, 24));
    n.push(await decodeStepMs(withRouting, 16, 24));
  }
  await diag.takeProfile();
  await diag.dispose();
  rows.push(['diagnostic mode overhead (decode step)', `${(median(d) / median(n)).toFixed(3)}×  (${median(d).toFixed(2)} vs ${median(n).toFixed(2)} ms)`]);

  // End to end through the generation loop (sampling, routing events with entropy and probabilities).
  let generated = 0;
  let decodeTps = 0;
  for await (const ev of generate(withRouting, { promptIds: prompt(16), maxNewTokens: 64, ignoreEos: true })) {
    if (ev.type === 'done') {
      generated = ev.generatedTokens;
      decodeTps = ev.decodeTokensPerSecond ?? 0;
    }
  }
  rows.push([`generate() end to end, ${generated} tokens from context 16`, `${decodeTps.toFixed(1)} tok/s`]);
  rows.push(['peak RSS', `${(peakRss() / 2 ** 20).toFixed(0)} MiB (both sessions loaded)`]);

  const w = Math.max(...rows.map((r) => r[0].length));
  console.log('\nengine benchmark (random-weight mixtral, L=8 d=512 E=8 F=1024 V=8192, fp32, CPU)');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
  await withRouting.dispose();
  await plain.dispose();
}

await main();
