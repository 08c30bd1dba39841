/**
 * `npm run bench` (traces): rows/s of `moe-lab trace` while generating, against generating alone,
 * on the engine benchmark's random-weight model (L=8 d=512 E=8 k=2, so 16 rows per token); and
 * the time to export, and read back, 1M synthetic rows as Parquet (plus JSONL and CSV).
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { writeCsv } from '../../engine/analysis/formats/csv.ts';
import { writeJsonl } from '../../engine/analysis/formats/jsonl.ts';
import { readParquet, readParquetDocument, writeParquet } from '../../engine/analysis/formats/parquet.ts';
import { rowCount } from '../../engine/analysis/rows.ts';
import type { RunTrace } from '../../engine/analysis/trace.ts';
import { runTrace } from '../../engine/cli/trace.ts';
import { Engine } from '../../engine/engine.ts';
import { seededRandom } from '../../engine/generate/sampling.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';
import { randomTrace } from '../engine/analysis/synthetic.ts';
import { randomMixtral } from './random-checkpoint.ts';
import { peakRss } from '../../engine/runtime/memory.ts';

const cacheDir = join(REPO_ROOT, '.cache', 'bench');
process.env['MOE_LAB_CACHE'] ??= cacheDir;
const PROMPTS = 6;
const NEW_TOKENS = 64;
const sink = new Writable({ write: (_c, _e, cb) => cb() });

function promptIds(i: number): number[] {
  return Array.from({ length: 32 }, (_, j) => 3 + ((i * 131 + j * 7919) % 8000));
}

/** Tokens/s of generating alone, and the seconds the model took to load. */
async function generationOnly(dir: string): Promise<{ tps: number; loadS: number }> {
  const l0 = performance.now();
  const engine = await Engine.load(dir, { cacheDir });
  const loadS = (performance.now() - l0) / 1000;
  try {
    let tokens = 0;
    const t0 = performance.now();
    for (let i = 0; i < PROMPTS; i++) {
      for await (const ev of engine.generate({ promptIds: promptIds(i), maxNewTokens: NEW_TOKENS, ignoreEos: true })) if (ev.type === 'routing') tokens++;
    }
    return { tps: (tokens / (performance.now() - t0)) * 1000, loadS };
  } finally {
    await engine.dispose();
  }
}

async function traceRowsPerSecond(dir: string, work: string): Promise<{ rows: number; seconds: number }> {
  const prompts = join(work, 'prompts.jsonl');
  writeFileSync(prompts, Array.from({ length: PROMPTS }, (_, i) => JSON.stringify({ prompt_ids: promptIds(i), domain: `d${i % 3}` })).join('\n'));
  const out = join(work, 'bench.parquet');
  const t0 = performance.now();
  await runTrace(['--model', dir, '--prompts', prompts, '--out', out, '--max-new-tokens', String(NEW_TOKENS), '--ignore-eos', '--quiet'], dir, sink);
  const seconds = (performance.now() - t0) / 1000;
  return { rows: (await readParquetDocument(out)).rows, seconds };
}

/** ≈ 1M rows: 62 500 positions × 8 layers × k = 2, with weights, probabilities and entropy. */
function millionRows(): RunTrace[] {
  const random = seededRandom(7);
  return Array.from({ length: 25 }, (_, i) =>
    randomTrace(random, { runId: `run-${i}`, tokens: 2500, layers: [0, 1, 2, 3, 4, 5, 6, 7], E: 8, k: 2, full: true, meta: { fields: { domain: `d${i % 4}` } } }),
  );
}

/** Wall and CPU seconds of f: on a shared machine the CPU time is the steadier number. */
function timed<T>(f: () => T): [T, number, number] {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const r = f();
  const c = process.cpuUsage(c0);
  return [r, (performance.now() - t0) / 1000, (c.user + c.system) / 1e6];
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'moe-lab-trace-bench-'));
  const rows: [string, string][] = [];
  try {
    const dir = await randomMixtral(join(cacheDir, 'mixtral-L8-d512-E8-F1024-V8192'), {
      layers: 8, hidden: 512, heads: 8, kvHeads: 8, experts: 8, topK: 2, ffn: 1024, vocab: 8192, context: 4096,
    });
    // Warm: compile (or find) the graph, and let onnxruntime allocate its arenas.
    await generationOnly(dir);
    const plain = await generationOnly(dir);
    const traced = await traceRowsPerSecond(dir, work);
    // The trace command loads the model too; its load time is taken to equal the one measured.
    const tracing = traced.seconds - plain.loadS;
    const tracedTps = traced.rows / 16 / tracing;
    rows.push([`trace while generating (${PROMPTS} prompts × (32 + ${NEW_TOKENS}) tokens)`, `${(traced.rows / tracing).toFixed(0)} rows/s (${traced.rows} rows in ${tracing.toFixed(2)} s + ${plain.loadS.toFixed(2)} s model load)`]);
    rows.push(['  tokens/s traced vs generating alone', `${tracedTps.toFixed(1)} vs ${plain.tps.toFixed(1)} tok/s (${((plain.tps / tracedTps - 1) * 100).toFixed(1)} % overhead)`]);

    const traces = millionRows();
    const n = traces.reduce((a, t) => a + rowCount(t), 0);
    const pq = join(work, 'million.parquet');
    const [, writeS, writeCpu] = timed(() => writeParquet(pq, traces));
    rows.push([`Parquet export, ${n.toLocaleString('en')} rows`, `${writeS.toFixed(2)} s, cpu ${writeCpu.toFixed(2)} s (${(n / writeS / 1e6).toFixed(2)} M rows/s, ${(statSync(pq).size / 2 ** 20).toFixed(1)} MiB)`]);
    const t0 = performance.now();
    const back = await readParquet(pq);
    rows.push([`Parquet read back (hyparquet), ${back.columns.length.toLocaleString('en')} rows`, `${((performance.now() - t0) / 1000).toFixed(2)} s`]);
    const [, jsonlS, jsonlCpu] = timed(() => writeJsonl(join(work, 'million.jsonl'), traces));
    rows.push(['JSONL export, same rows', `${jsonlS.toFixed(2)} s, cpu ${jsonlCpu.toFixed(2)} s (${(statSync(join(work, 'million.jsonl')).size / 2 ** 20).toFixed(1)} MiB)`]);
    const [, csvS, csvCpu] = timed(() => writeCsv(join(work, 'million.csv'), traces));
    rows.push(['CSV export, same rows', `${csvS.toFixed(2)} s, cpu ${csvCpu.toFixed(2)} s (${(statSync(join(work, 'million.csv')).size / 2 ** 20).toFixed(1)} MiB)`]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log('\ntrace benchmark (random-weight mixtral, L=8 d=512 E=8 k=2, CPU)');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
  console.log(`  peak RSS${' '.repeat(Math.max(0, w - 8))}  ${(peakRss() / 2 ** 20).toFixed(0)} MiB`);
}

await main();
