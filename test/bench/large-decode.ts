/**
 * Child process of the large benchmark: loads a checkpoint's cached int4 graph, then times decode
 * steps, so the resident memory it reports is the model's alone. Prints one JSON line.
 */
import { argmax } from '../../engine/generate/sampling.ts';
import { peakRss } from '../../engine/runtime/memory.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';

const [dir, cacheDir, stepsArg] = process.argv.slice(2);
const steps = Number(stepsArg ?? 8);
const t0 = performance.now();
const runner = await ModelRunner.load(dir!, { cacheDir: cacheDir!, quant: 'int4' });
const loadSeconds = (performance.now() - t0) / 1000;
const rssAfterLoad = process.memoryUsage().rss;
const prompt = Array.from({ length: 16 }, (_, i) => 100 + i * 37);
const p0 = performance.now();
let out = await runner.step({ ids: prompt, logitIndex: [prompt.length - 1], routeBias: null, topK: runner.config.moe.topK });
const prefillMs = performance.now() - p0;
// One warm-up step (first decode allocates), then the timed ones.
out = await runner.step({ ids: [argmax(out.logits)], logitIndex: [0], routeBias: null, topK: runner.config.moe.topK });
const ms: number[] = [];
for (let s = 0; s < steps; s++) {
  const a = performance.now();
  out = await runner.step({ ids: [argmax(out.logits)], logitIndex: [0], routeBias: null, topK: runner.config.moe.topK });
  ms.push(performance.now() - a);
}
ms.sort((a, b) => a - b);
const median = ms[Math.floor(ms.length / 2)]!;
console.log(
  JSON.stringify({
    loadSeconds,
    prefillTokens: prompt.length,
    prefillMs,
    decodeMedianMs: median,
    decodeTokPerSec: 1000 / median,
    routingLayers: out.routing ? out.routing.ids.length / out.routing.k : 0,
    rssAfterLoad,
    rssAfterDecode: process.memoryUsage().rss,
    peakRss: peakRss(),
    weightBytes: runner.memory.weights,
  }),
);
await runner.dispose();
