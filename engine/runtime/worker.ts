/**
 * The inference worker: owns one ModelRunner and runs generations on it. onnxruntime's
 * `session.run` blocks its thread, so it lives here, off the main event loop. A cancel arrives as
 * a flag in shared memory, since this thread does not return to its event loop mid-generation.
 */
import { parentPort } from 'node:worker_threads';
import { assertNever } from '../assert-never.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { generate, promptIds } from '../generate/generate.ts';
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
    hash: r.hash,
    modelType: c.modelType,
    numLayers: c.numLayers,
    moeLayers: c.moeLayers,
    numExperts: c.moe.numExperts,
    topK: c.moe.topK,
    vocabSize: c.vocabSize,
    contextLength: c.maxPositions,
    hasTokenizer: r.ckpt.tokenizer !== null,
  };
}

// Messages are handled one at a time: a generation finishes before the next message is read.
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
      const flag = new Int32Array(msg.cancel);
      try {
        if (!runner) throw new EngineError(EngineErrorCode.DISPOSED, 'no model is loaded');
        for await (const event of generate(runner, msg.request, { cancelled: () => Atomics.load(flag, 0) !== 0 })) {
          send({ type: 'event', id: msg.id, event });
        }
        send({ type: 'end', id: msg.id });
      } catch (e) {
        send({ type: 'failed', id: msg.id, error: serialize(e) });
      }
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
      await runner?.dispose();
      runner = null;
      send({ type: 'disposed' });
      port.close();
      return;
    default:
      assertNever(msg, 'worker message');
  }
}
