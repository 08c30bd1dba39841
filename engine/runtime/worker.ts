/**
 * The inference worker: owns one ModelRunner and runs generations on it, several at a time taking
 * turns step by step, each with its own KV cache. onnxruntime's `session.run` blocks its thread, so
 * it lives here, off the main event loop. A cancel arrives as a flag in shared memory, checked
 * between steps.
 */
import { parentPort } from 'node:worker_threads';
import { assertNever } from '../assert-never.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { generate, promptIds } from '../generate/generate.ts';
import type { GenerationEvent } from '../generate/types.ts';
import type { FromWorker, ModelInfo, SerializedError, ToWorker } from './messages.ts';
import { ModelRunner } from './runner.ts';

if (!parentPort) throw new Error('worker.ts must run in a worker thread');
const port = parentPort;

let runner: ModelRunner | null = null;
const send = (m: FromWorker) => port.postMessage(m);

function serialize(e: unknown): SerializedError {
  if (e instanceof EngineError) return e.toJSON();
  return { code: EngineErrorCode.RUNTIME, message: e instanceof Error ? e.message : String(e) };
}

function info(r: ModelRunner): ModelInfo {
  const c = r.config;
  return {
    id: r.ckpt.id,
    dir: r.ckpt.dir,
    // Identifies the weights that ran: quantized runs route differently from the float checkpoint.
    hash: r.quant === 'none' ? r.hash : `${r.hash}:${r.quant}`,
    modelType: c.modelType,
    numLayers: c.numLayers,
    moeLayers: c.moeLayers,
    numExperts: c.moe.numExperts,
    topK: c.moe.topK,
    vocabSize: c.vocabSize,
    contextLength: r.context,
    hasTokenizer: r.ckpt.tokenizer !== null,
    quant: r.quant,
    memory: r.memory,
    warnings: r.warnings,
  };
}

/** A generation in progress; each takes one engine step per turn. */
interface Sequence {
  readonly id: number;
  readonly gen: AsyncGenerator<GenerationEvent>;
}
const active: Sequence[] = [];
/** Diagnostic mode profiles steps in order, so its generations run one after another. */
const waiting: Sequence[] = [];
let looping = false;

/**
 * Round-robin over the active generations, one step each per turn, so concurrent runs stream side
 * by side. Between turns the loop yields to the event loop, so new requests join promptly.
 */
async function loop(): Promise<void> {
  if (looping) return;
  looping = true;
  while (active.length > 0) {
    const seq = active.shift()!;
    let finished = false;
    try {
      for (;;) {
        const r = await seq.gen.next();
        if (r.done) {
          send({ type: 'end', id: seq.id });
          finished = true;
          break;
        }
        send({ type: 'event', id: seq.id, event: r.value });
        if (r.value.type === 'timing') break;
      }
    } catch (e) {
      send({ type: 'failed', id: seq.id, error: serialize(e) });
      finished = true;
    }
    if (!finished) active.push(seq);
    else if (waiting.length > 0 && active.length === 0) active.push(waiting.shift()!);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  looping = false;
}

// Messages are handled in order; a generation only registers here and runs in the loop above.
let chain = Promise.resolve();
port.on('message', (msg: ToWorker) => {
  chain = chain.then(() => handle(msg));
});

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case 'load':
      try {
        runner = await ModelRunner.load(msg.dir, msg.options);
        send({ type: 'loaded', info: info(runner) });
      } catch (e) {
        send({ type: 'load-failed', error: serialize(e) });
      }
      return;
    case 'generate': {
      if (!runner) {
        send({ type: 'failed', id: msg.id, error: serialize(new EngineError(EngineErrorCode.DISPOSED, 'no model is loaded')) });
        return;
      }
      const flag = new Int32Array(msg.cancel);
      const exclusive = runner.diagnostics;
      const gen = generate(runner, msg.request, {
        cancelled: () => Atomics.load(flag, 0) !== 0,
        ...(exclusive ? {} : { cache: runner.newCache() }),
      });
      if (exclusive && (active.length > 0 || looping)) waiting.push({ id: msg.id, gen });
      else active.push({ id: msg.id, gen });
      void loop();
      return;
    }
    case 'encode':
      try {
        if (!runner) throw new EngineError(EngineErrorCode.DISPOSED, 'no model is loaded');
        send({ type: 'encoded', id: msg.id, ids: promptIds(runner, { prompt: msg.text }) });
      } catch (e) {
        send({ type: 'failed', id: msg.id, error: serialize(e) });
      }
      return;
    case 'dispose':
      for (const s of [...active, ...waiting]) await s.gen.return(undefined);
      active.length = 0;
      waiting.length = 0;
      await runner?.dispose();
      runner = null;
      send({ type: 'disposed' });
      port.close();
      return;
    default:
      assertNever(msg, 'worker message');
  }
}
