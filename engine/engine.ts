/**
 * The engine as the rest of MoE Lab uses it: a model loaded in its own worker thread, and
 * generations as async iterators of events. `dispose` ends the worker.
 *
 *   const engine = await Engine.load('models/moe-lab-tiny');
 *   for await (const ev of engine.generate({ prompt: 'Hello' }, { signal })) …
 *   await engine.dispose();
 */
import { Worker } from 'node:worker_threads';
import { EngineError, EngineErrorCode } from './errors.ts';
import type { GenerateRequest, GenerationEvent } from './generate/types.ts';
import type { FromWorker, ModelInfo, SerializedError, ToWorker } from './runtime/messages.ts';
import type { RunnerOptions } from './runtime/runner.ts';

export type { ModelInfo } from './runtime/messages.ts';

function revive(e: SerializedError): EngineError {
  return new EngineError(e.code, e.message, e.details);
}

function spawnWorker(): Worker {
  return new Worker(new URL('./runtime/worker-entry.mjs', import.meta.url));
}

type Listener = (m: FromWorker) => void;

export class Engine {
  private listeners = new Set<Listener>();
  private nextId = 1;
  private exited: EngineError | null = null;

  private constructor(private readonly worker: Worker, readonly info: ModelInfo) {
    worker.on('message', (m: FromWorker) => this.listeners.forEach((l) => l(m)));
    worker.on('error', (e) => this.fail(new EngineError(EngineErrorCode.RUNTIME, `inference worker crashed: ${e.message}`)));
    worker.on('exit', () => this.fail(new EngineError(EngineErrorCode.DISPOSED, 'the inference worker has exited')));
  }

  static async load(dir: string, options: RunnerOptions = {}): Promise<Engine> {
    const worker = spawnWorker();
    const info = await new Promise<ModelInfo>((resolve, reject) => {
      const onMsg = (m: FromWorker) => {
        if (m.type === 'loaded') resolve(m.info);
        else if (m.type === 'load-failed') reject(revive(m.error));
      };
      worker.on('message', onMsg);
      worker.once('error', reject);
      worker.postMessage({ type: 'load', dir, options } satisfies ToWorker);
    }).catch(async (e) => {
      await worker.terminate();
      throw e;
    });
    worker.removeAllListeners('message');
    worker.removeAllListeners('error');
    return new Engine(worker, info);
  }

  private fail(e: EngineError): void {
    this.exited ??= e;
    const m: FromWorker = { type: 'failed', id: -1, error: e.toJSON() };
    this.listeners.forEach((l) => l(m));
  }

  /** Tokenizes text with the model's tokenizer. */
  encode(text: string): Promise<number[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const l: Listener = (m) => {
        if (m.type === 'encoded' && m.id === id) {
          this.listeners.delete(l);
          resolve(m.ids);
        } else if (m.type === 'failed' && (m.id === id || m.id === -1)) {
          this.listeners.delete(l);
          reject(revive(m.error));
        }
      };
      this.listeners.add(l);
      this.worker.postMessage({ type: 'encode', id, text } satisfies ToWorker);
    });
  }

  /**
   * Streams a generation. Several may run at once: the worker gives them turns, one step each.
   * Aborting the signal (or leaving the loop early) cancels it between
   * tokens; the iterator then ends with a `done` event whose reason is 'cancelled'.
   */
  async *generate(request: GenerateRequest, opts: { signal?: AbortSignal } = {}): AsyncGenerator<GenerationEvent> {
    if (this.exited) throw this.exited;
    const id = this.nextId++;
    const cancel = new SharedArrayBuffer(4);
    const flag = new Int32Array(cancel);
    const setCancel = () => Atomics.store(flag, 0, 1);
    if (opts.signal?.aborted) setCancel();
    opts.signal?.addEventListener('abort', setCancel, { once: true });

    const buffer: FromWorker[] = [];
    let wake: (() => void) | null = null;
    const l: Listener = (m) => {
      if (('id' in m && m.id === id) || (m.type === 'failed' && m.id === -1)) {
        buffer.push(m);
        wake?.();
      }
    };
    this.listeners.add(l);
    this.worker.postMessage({ type: 'generate', id, request, cancel } satisfies ToWorker);
    let ended = false;
    try {
      for (;;) {
        const m = buffer.shift();
        if (!m) {
          await new Promise<void>((r) => (wake = r));
          wake = null;
          continue;
        }
        if (m.type === 'event') yield m.event;
        else if (m.type === 'end') {
          ended = true;
          return;
        } else if (m.type === 'failed') {
          ended = true;
          throw revive(m.error);
        }
      }
    } finally {
      if (!ended) {
        // The consumer stopped early: cancel, and drain until the worker says the run ended.
        setCancel();
        await new Promise<void>((resolve) => {
          const drain: Listener = (m) => {
            if ((m.type === 'end' || m.type === 'failed') && (m.id === id || m.id === -1)) {
              this.listeners.delete(drain);
              resolve();
            }
          };
          if (buffer.some((m) => m.type === 'end' || m.type === 'failed')) resolve();
          else this.listeners.add(drain);
        });
      }
      this.listeners.delete(l);
      opts.signal?.removeEventListener('abort', setCancel);
    }
  }

  async dispose(): Promise<void> {
    if (this.exited) return;
    await new Promise<void>((resolve) => {
      const l: Listener = (m) => {
        if (m.type === 'disposed') resolve();
      };
      this.listeners.add(l);
      this.worker.once('exit', () => resolve());
      this.worker.postMessage({ type: 'dispose' } satisfies ToWorker);
    });
    this.exited = new EngineError(EngineErrorCode.DISPOSED, 'the engine was disposed');
    await this.worker.terminate();
  }
}
