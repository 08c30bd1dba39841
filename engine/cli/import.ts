/**
 * `moe-lab import DIR --quant none|int8|int4`: converts a Hugging Face checkpoint into the cached
 * graph the engine runs, ahead of time. Prints the memory budget before anything is converted,
 * progress while it hashes and converts (tensor by tensor; the import never holds the model), and
 * where the graph went, its size, the time taken and the import's own peak memory. Tensors in the
 * weights that the model never reads are named in a warning, on every import, cached or not.
 */
import { parseArgs } from 'node:util';
import { openCheckpoint } from '../checkpoint/checkpoint.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { compileGraph, defaultCacheDir, type ImportProgress } from '../graph/compile.ts';
import { describeExpertStorage, parseQuant } from '../graph/quant.ts';
import { describeUnusedTensors } from '../graph/weights.ts';
import { describeBudget, estimateWeightBytes, fitContext, formatBytes, peakRss, residentWeightBytes } from '../runtime/memory.ts';

export const IMPORT_USAGE = `moe-lab import DIR [--quant none|int8|int4] [--cache DIR] [--plain]

  Builds DIR's graph into the cache (default $MOE_LAB_CACHE or ~/.cache/moe-lab) so the first
  generation starts at once. --quant int8|int4 stores the routed experts block-quantized (int4
  keeps the first eighth of the MoE layers, rounded up but never the last, at int8; other matrices float16 on disk,
  float32 in memory). --plain builds the graph without routing outputs
  (benchmarks only).`;

export interface ImportResult {
  readonly modelPath: string;
  readonly weightBytes: number;
  readonly seconds: number;
  readonly peakRssBytes: number;
  readonly built: boolean;
  /** Checkpoint tensors the model does not use (CompiledGraph.unusedTensors). */
  readonly unusedTensors: readonly string[];
}

export async function runImport(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<ImportResult> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { quant: { type: 'string' }, cache: { type: 'string' }, plain: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) throw new EngineError(EngineErrorCode.MISSING_FILE, 'give one checkpoint folder: moe-lab import DIR');
  const quant = parseQuant(values.quant);
  const cacheDir = values.cache ?? defaultCacheDir();
  const t0 = performance.now();
  const ckpt = openCheckpoint(positionals[0]!);
  const c = ckpt.config;
  out.write(
    `${ckpt.id}: ${c.modelType}, ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.moe.numExperts} experts of ${c.moe.expertIntermediate}, top-${c.moe.topK}, vocab ${c.vocabSize}\n`,
  );
  const est = estimateWeightBytes(c, ckpt.tensors, quant);
  out.write(`${describeBudget(fitContext(c, est.resident))} [estimated, --quant ${quant}]\n`);

  const isTty = 'isTTY' in err && err.isTTY === true;
  let lastPrint = 0;
  let lastPhase = '';
  let lineOpen = false;
  let skipped: ImportProgress | null = null;
  const render = (p: ImportProgress) => {
    const finished = p.done === p.total;
    const pct = p.total > 0 ? (100 * p.done) / p.total : 100;
    const bar = '#'.repeat(Math.round(pct / 5)).padEnd(20, '.');
    const line = `${p.phase === 'hash' ? 'hashing   ' : 'converting'} [${bar}] ${pct.toFixed(1).padStart(5)} % ${formatBytes(p.done)} / ${formatBytes(p.total)}${p.tensor ? `  ${p.tensor}` : ''}`;
    err.write(isTty ? `\r${line.slice(0, 160).padEnd(160)}${finished ? '\n' : ''}` : `${line}\n`);
    lineOpen = isTty && !finished;
    skipped = null;
  };
  const progress = (p: ImportProgress) => {
    const now = performance.now();
    if (p.done !== p.total && now - lastPrint < (isTty ? 100 : 2000) && p.phase === lastPhase) {
      skipped = p;
      return;
    }
    lastPrint = now;
    lastPhase = p.phase;
    render(p);
  };
  const graph = await compileGraph(ckpt, { routingOutputs: !values.plain, quant, onProgress: progress }, cacheDir);
  // Unused tensors are never converted, so conversion can end short of 100 %: show where it ended.
  if (skipped) render(skipped);
  if (lineOpen) err.write('\n');
  if (graph.unusedTensors.length > 0) err.write(`warning: ${describeUnusedTensors(c, graph.unusedTensors)}\n`);
  const seconds = (performance.now() - t0) / 1000;
  const peak = peakRss();
  out.write(
    `${graph.built ? 'built' : 'already cached'}: ${graph.modelPath}\n` +
      `weights file ${formatBytes(graph.weightBytes)} (${quant}: ${describeExpertStorage(quant, c.moeLayers.length)}); ${describeBudget(fitContext(c, residentWeightBytes(graph.weightBytes, est)))}\n` +
      `import took ${seconds.toFixed(1)} s, peak memory of the import ${formatBytes(peak)} (${peak} bytes)\n`,
  );
  return { modelPath: graph.modelPath, weightBytes: graph.weightBytes, seconds, peakRssBytes: peak, built: graph.built, unusedTensors: graph.unusedTensors };
}
