/**
 * `npm run loadtest`: a server on 127.0.0.1 with a small random-weight model, and 50 clients in a
 * separate process, each streaming one run at the same time. Bounded (one run per client, 120 s
 * limit) and loopback only. Prints events/s, p50/p99 latency from an event being produced to a
 * client receiving it, and lost events (must be 0).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { startServer } from '../../server/app.ts';
import { memoryLogger } from '../../server/log.ts';
import { NotebookStore } from '../../server/notebooks/store.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';
import { randomMixtral } from './random-checkpoint.ts';

const CLIENTS = 50;
const NEW_TOKENS = 48;

const modelDir = await randomMixtral(join(REPO_ROOT, '.cache', 'bench', 'mixtral-L4-d128-E8-F256-V256'), {
  layers: 4, hidden: 128, heads: 4, kvHeads: 2, experts: 8, topK: 2, ffn: 256, vocab: 256, context: 1024,
});
const server = await startServer({
  port: 0,
  modelDirs: [modelDir],
  dataDir: mkdtempSync(join(tmpdir(), 'moe-lab-load-')),
  notebooks: await NotebookStore.open(mkdtempSync(join(tmpdir(), 'moe-lab-load-nb-'))),
  ui: null,
  log: memoryLogger(),
  limits: { maxConcurrentRuns: CLIENTS, maxQueue: CLIENTS * 2, messagesPerSecond: 100 },
});

const t0 = performance.now();
const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test', 'bench', 'loadtest-clients.ts'), server.url, server.token, String(CLIENTS), String(NEW_TOKENS), basename(modelDir)], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
child.stdout.on('data', (d) => (out += d));
const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
const seconds = (performance.now() - t0) / 1000;
if (code !== 0) {
  await server.close();
  throw new Error(`load test clients exited with ${code}`);
}

const results = JSON.parse(out) as { runId: string; received: number[]; frames: number; gaps: number }[];
const latencies: number[] = [];
let received = 0;
let expected = 0;
let gaps = 0;
let frames = 0;
for (const r of results) {
  const run = server.runs.get(r.runId);
  const produced = run ? run.appendedAt : [];
  expected += run ? run.events.length : server.store.get(r.runId)?.eventCount ?? 0;
  received += r.received.length;
  gaps += r.gaps;
  frames += r.frames;
  r.received.forEach((t, i) => produced[i] !== undefined && latencies.push(t - produced[i]!));
}
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
await server.close();

console.log(`load test: ${CLIENTS} concurrent clients on loopback, one run of ${NEW_TOKENS} new tokens each (random-weight L=4 d=128 E=8 model)`);
console.log(`  events received     ${received} in ${frames} frames over ${seconds.toFixed(2)} s`);
console.log(`  events/s            ${(received / seconds).toFixed(0)}`);
console.log(`  event latency p50   ${pct(50).toFixed(2)} ms   (event produced → client received)`);
console.log(`  event latency p99   ${pct(99).toFixed(2)} ms`);
console.log(`  lost events         ${expected - received}   (gaps in sequence: ${gaps})`);
if (expected !== received || gaps !== 0) process.exitCode = 1;
