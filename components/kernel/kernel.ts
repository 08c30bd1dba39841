/**
 * The page side of a notebook's kernel: one dedicated worker per notebook, spawned lazily.
 * Cells run one at a time, in the order they were asked for. TypeScript is transpiled here
 * (sucrase, loaded only when a code cell runs) and top-level declarations are hoisted so that
 * they persist between cells. Interrupt and restart terminate the worker and start a fresh one.
 */
import { hoistTopLevel } from './hoist';

export const KERNEL_URL = '/kernel/worker.js';

export type KernelOutput =
  | { readonly type: 'stream'; readonly name: 'stdout' | 'stderr'; readonly text: string }
  | { readonly type: 'display'; readonly kind: string; readonly data: unknown }
  | { readonly type: 'error'; readonly ename: string; readonly evalue: string; readonly traceback: string[] };

export type RunOutcome = 'ok' | 'error' | 'interrupted';

/** What `lab.*` calls in notebook code do: implemented by the page (it owns the server connection). */
export type KernelHost = (method: string, args: unknown[]) => Promise<unknown>;

interface Job {
  readonly cellId: string;
  readonly source: string;
  /** How a traceback names this run's code, e.g. `cell [3]`. */
  readonly label: string;
  readonly onOutput: (o: KernelOutput) => void;
  /** Called when the job leaves the queue and starts. */
  readonly onStart: () => void;
  readonly resolve: (r: RunOutcome) => void;
}

type WorkerMessage =
  | { type: 'ready' }
  | { type: 'stream'; cellId: string; name: 'stdout' | 'stderr'; text: string }
  | { type: 'display'; cellId: string; kind: string; data: unknown }
  | { type: 'error'; cellId: string; ename: string; evalue: string; traceback: string[]; background?: boolean }
  | { type: 'done'; cellId: string }
  | { type: 'call'; id: number; method: string; args: unknown[] };

export async function transpile(ts: string): Promise<string> {
  const { transform } = await import('sucrase');
  return transform(ts, { transforms: ['typescript'], disableESTransforms: true }).code;
}

export class Kernel {
  private worker: Worker | null = null;
  private queue: Job[] = [];
  private current: Job | null = null;
  onState: (state: 'idle' | 'busy' | 'restarting') => void = () => {};
  /**
   * Output of a cell that is not the one running: a timer it set, or output that arrives after its
   * run ended. It belongs to that cell, as the output of a cell's background thread does in Jupyter.
   */
  onBackgroundOutput: (cellId: string, output: KernelOutput) => void = () => {};

  constructor(private readonly host: KernelHost) {}

  run(cellId: string, source: string, onOutput: (o: KernelOutput) => void, onStart: () => void = () => {}, label = 'cell'): Promise<RunOutcome> {
    return new Promise((resolve) => {
      this.queue.push({ cellId, source, label, onOutput, onStart, resolve });
      void this.pump();
    });
  }

  /** Stops the running cell (and drops queued ones) by replacing the worker. Variables are lost, as in Jupyter's restart. */
  interrupt(): void {
    this.current?.resolve('interrupted');
    this.current = null;
    for (const j of this.queue) j.resolve('interrupted');
    this.queue = [];
    this.onState('restarting');
    this.worker?.terminate();
    this.worker = null;
    this.onState('idle');
  }

  restart(): void {
    this.interrupt();
  }

  dispose(): void {
    this.interrupt();
  }

  private spawn(): Worker {
    const w = new Worker(KERNEL_URL);
    w.onmessage = (e: MessageEvent<WorkerMessage>) => this.onMessage(w, e.data);
    w.onerror = (e) => {
      this.current?.onOutput({ type: 'error', ename: 'KernelError', evalue: e.message || 'the kernel crashed', traceback: [] });
      this.current?.resolve('error');
      this.current = null;
      void this.pump();
    };
    return w;
  }

  private async pump(): Promise<void> {
    if (this.current || this.queue.length === 0) return;
    const job = this.queue.shift()!;
    this.current = job;
    this.onState('busy');
    job.onStart();
    let hoisted: { script: string; firstLine: number };
    try {
      hoisted = hoistTopLevel(await transpile(job.source));
    } catch (e) {
      job.onOutput({ type: 'error', ename: 'SyntaxError', evalue: e instanceof Error ? e.message : String(e), traceback: [] });
      this.finish(job, 'error');
      return;
    }
    if (this.current !== job) return; // interrupted while transpiling
    this.worker ??= this.spawn();
    // The transpiler keeps the cell's lines, so the cell's line count bounds its frames in tracebacks.
    const lines = job.source.split('\n').length;
    this.worker.postMessage({ type: 'run', cellId: job.cellId, script: hoisted.script, label: job.label, firstLine: hoisted.firstLine, lines });
  }

  private finish(job: Job, outcome: RunOutcome): void {
    if (this.current !== job) return;
    this.current = null;
    job.resolve(outcome);
    if (this.queue.length === 0) this.onState('idle');
    void this.pump();
  }

  private onMessage(w: Worker, m: WorkerMessage): void {
    if (w !== this.worker) return;
    switch (m.type) {
      case 'ready':
        return;
      case 'call':
        this.host(m.method, m.args).then(
          (value) => w.postMessage({ type: 'call-result', id: m.id, value }),
          (e: unknown) => w.postMessage({ type: 'call-result', id: m.id, error: e instanceof Error ? e.message : String(e) }),
        );
        return;
      case 'stream':
      case 'display':
      case 'error':
      case 'done': {
        const job = this.current;
        const running = job !== null && job.cellId === m.cellId;
        if (m.type === 'done') {
          if (running) this.finish(job, 'ok');
          return;
        }
        const output: KernelOutput =
          m.type === 'stream' ? { type: 'stream', name: m.name, text: m.text }
          : m.type === 'display' ? { type: 'display', kind: m.kind, data: m.data }
          : { type: 'error', ename: m.ename, evalue: m.evalue, traceback: m.traceback };
        if (running) job.onOutput(output);
        else this.onBackgroundOutput(m.cellId, output);
        // A timer's uncaught error is output; only the cell's own code ends its run.
        if (running && m.type === 'error' && !m.background) this.finish(job, 'error');
        return;
      }
      default: {
        const never: never = m;
        throw new Error(`unexpected kernel message ${JSON.stringify(never)}`);
      }
    }
  }
}
