// The notebook kernel: one dedicated worker per notebook. Code cells arrive as JavaScript (the page
// transpiles TypeScript and hoists top-level declarations, see hoist.ts) and run as classic scripts
// in this worker's global scope, so values persist from cell to cell. Output goes back to the page
// as messages; the `lab` API forwards calls to the page, which owns the server connection.
//
// Everything the kernel needs lives inside this closure, and it listens with addEventListener: the
// global scope belongs to the cells, which may well name a variable `format`, `calls` or `onmessage`.
//
// Output goes to the cell that ran last (the one running, or the last one to run), as in Jupyter,
// except while a timer's callback runs: its output goes to the cell that set the timer, also after
// that cell finished. (Which cell an awaited continuation belongs to cannot be known in a worker, so
// those follow the cell that ran last.)
'use strict';
(() => {
  /** Where output goes now: the cell that ran last, or a timer's owner while its callback runs. */
  let currentCell = null;
  /** The cell whose run is in progress, if any. */
  let runningCell = null;
  let nextCall = 1;
  /** Pending lab calls: how to settle each. */
  const calls = new Map();
  /** Characters of output one cell may send per run; past it the output is cut, once, with a notice. */
  const MAX_CELL_OUTPUT = 1_000_000;
  /** Output sent per cell since its last run; a cell's timers keep counting after it finishes. */
  const sent = new Map();

  const post = (msg) => self.postMessage(msg);

  const text = (v) => {
    try {
      return String(v);
    } catch {
      return Object.prototype.toString.call(v);
    }
  };

  /** A value as console.log shows it: JSON-like, but Map, Set, BigInt, NaN, RegExp and cycles read as themselves. */
  function format(value) {
    if (typeof value === 'string') return value;
    const seen = new Set();
    const show = (v, indent) => {
      if (v === null || v === undefined || typeof v === 'boolean' || typeof v === 'number') return text(v);
      if (typeof v === 'bigint') return `${v}n`;
      if (typeof v === 'string') return JSON.stringify(v);
      if (typeof v === 'function') return `[Function ${v.name || '(anonymous)'}]`;
      if (typeof v === 'symbol') return text(v);
      if (v instanceof Error) return v.stack || `${v.name}: ${v.message}`;
      if (v instanceof RegExp || v instanceof Date) return text(v);
      if (seen.has(v)) return '[Circular]';
      seen.add(v);
      const pad = '  '.repeat(indent + 1);
      const end = '  '.repeat(indent);
      const list = (open, items, close) => (items.length === 0 ? `${open}${close}` : `${open}\n${items.map((i) => pad + i).join(',\n')}\n${end}${close}`);
      try {
        if (Array.isArray(v) || ArrayBuffer.isView(v)) return list('[', Array.from(v, (x) => show(x, indent + 1)), ']');
        if (v instanceof Map) return list(`Map(${v.size}) {`, [...v].map(([k, x]) => `${show(k, indent + 1)} => ${show(x, indent + 1)}`), '}');
        if (v instanceof Set) return list(`Set(${v.size}) {`, [...v].map((x) => show(x, indent + 1)), '}');
        return list('{', Object.keys(v).map((k) => `${JSON.stringify(k)}: ${show(v[k], indent + 1)}`), '}');
      } finally {
        seen.delete(v);
      }
    };
    try {
      return show(value, 0);
    } catch {
      return text(value);
    }
  }

  function stream(name) {
    return (...args) => {
      const cellId = currentCell;
      const used = sent.get(cellId) ?? 0;
      if (used > MAX_CELL_OUTPUT) return;
      let out = args.map(format).join(' ') + '\n';
      if (used + out.length > MAX_CELL_OUTPUT) {
        out = `${out.slice(0, Math.max(0, MAX_CELL_OUTPUT - used))}\n[output cut at ${MAX_CELL_OUTPUT.toLocaleString('en')} characters]\n`;
        sent.set(cellId, MAX_CELL_OUTPUT + 1);
      } else sent.set(cellId, used + out.length);
      post({ type: 'stream', cellId, name, text: out });
    };
  }

  self.console = { log: stream('stdout'), info: stream('stdout'), debug: stream('stdout'), warn: stream('stderr'), error: stream('stderr') };

  function call(method, args) {
    const id = nextCall++;
    return new Promise((resolve, reject) => {
      calls.set(id, { resolve, reject });
      post({ type: 'call', id, method, args });
    });
  }

  self.lab = Object.freeze({
    /** Runs a generation and resolves to the finished run: tokens, routing per position, summary. */
    generate: (params) => call('generate', [params]),
    /** Recent runs (summaries). */
    runs: (options) => call('runs', [options ?? {}]),
    /** One stored run with all its events. */
    run: (runId) => call('run', [runId]),
    /** Routing metrics over runs (ids or run objects): load balance, entropy, co-activation, … */
    analyze: (runs, options) => call('analyze', [(runs ?? []).map((r) => (typeof r === 'string' ? r : r.runId)), options ?? {}]),
    /** Models the server offers. */
    models: () => call('models', []),
    /** Shows a visualization in this cell's output: lab.show('heatmap', run). */
    show: (kind, data) => post({ type: 'display', cellId: currentCell, kind: text(kind), data: JSON.parse(JSON.stringify(data ?? null)) }),
  });

  /**
   * A timer's callback runs as the cell that set it. What it throws is that cell's error output.
   * Left uncaught it would reach the page as a crash of whichever cell is running. It ends the
   * owner's run only when that run is still going (its code may be awaiting the timer, which now
   * never resolves); another cell's run goes on.
   */
  function owned(callback, owner) {
    return function (...args) {
      const before = currentCell;
      currentCell = owner;
      try {
        return typeof callback === 'function' ? callback.apply(this, args) : (0, eval)(String(callback));
      } catch (e) {
        post({ type: 'error', cellId: owner, background: owner !== runningCell, ...errorOutput(e) });
      } finally {
        currentCell = before;
      }
    };
  }
  /** The runtime's own setTimeout, for the kernel's timers (which belong to no cell). */
  const kernelTimeout = self.setTimeout.bind(self);
  for (const name of ['setTimeout', 'setInterval']) {
    const original = self[name].bind(self);
    self[name] = (callback, ...rest) => original(owned(callback, currentCell), ...rest);
  }

  /**
   * A promise that rejects with no handler yet. Code often handles one a little later
   * (`const p = f(); await g(); await p`), so it is shown only if it is still unhandled a second
   * later, as an error of the cell that ran when it was rejected; handled before then, it is
   * forgotten. It ends no run (a cell's own awaited promise is handled by the run below).
   */
  const REJECTION_GRACE_MS = 1000;
  const unhandled = new Map();
  self.addEventListener('unhandledrejection', (event) => {
    event.preventDefault();
    const entry = { cellId: currentCell, reason: event.reason };
    unhandled.set(event.promise, entry);
    kernelTimeout(() => {
      if (unhandled.get(event.promise) !== entry) return;
      unhandled.delete(event.promise);
      post({ type: 'error', cellId: entry.cellId, background: true, ...errorOutput(entry.reason) });
    }, REJECTION_GRACE_MS);
  });
  self.addEventListener('rejectionhandled', (event) => {
    unhandled.delete(event.promise);
  });

  /**
   * Each cell run's script URL, with how tracebacks name it and the script line of the cell's first
   * line, so a frame reads `cell [3]:2:14` (line 2 of that cell) rather than a blob URL whose line
   * numbers count the kernel's wrapper. Kept for the kernel's life: a function defined in one cell
   * and called from another still points at its own cell.
   */
  const scripts = new Map();
  const FRAME_URL = /(blob:[^\s)]+?):(\d+):(\d+)/g;

  function traceback(stack) {
    const frames = [];
    for (const line of stack.split('\n')) {
      if (!/^\s*at\s|@/.test(line) || line.includes('/kernel/worker.js')) continue;
      let wrapper = false;
      const named = line.replace(FRAME_URL, (frame, url, l, c) => {
        const s = scripts.get(url);
        if (!s) return frame;
        const at = Number(l) - s.firstLine + 1;
        // The lines around the cell's code are the kernel's wrapper (the call that starts the cell).
        if (at < 1 || at > s.lines) wrapper = true;
        return `${s.label}:${at}:${c}`;
      });
      if (!wrapper) frames.push(named);
    }
    return frames;
  }

  /** What the page shows for a thrown value: always strings, whatever was thrown (an object whose message is an object, say). */
  function errorOutput(e) {
    const isObject = e !== null && typeof e === 'object';
    const ename = isObject && typeof e.name === 'string' && e.name ? e.name : 'Error';
    const evalue = isObject && typeof e.message === 'string' ? e.message : isObject ? format(e) : text(e);
    return { ename, evalue, traceback: isObject && typeof e.stack === 'string' ? traceback(e.stack) : [] };
  }

  self.addEventListener('message', async (event) => {
    const msg = event.data;
    if (msg.type === 'call-result') {
      const c = calls.get(msg.id);
      if (!c) return;
      calls.delete(msg.id);
      if (msg.error) c.reject(new Error(msg.error));
      else c.resolve(msg.value);
      return;
    }
    if (msg.type !== 'run') return;
    currentCell = msg.cellId;
    runningCell = msg.cellId;
    sent.delete(msg.cellId);
    const url = URL.createObjectURL(new Blob([msg.script], { type: 'application/javascript' }));
    scripts.set(url, { label: text(msg.label), firstLine: Number(msg.firstLine) || 1, lines: Number(msg.lines) || Infinity });
    try {
      importScripts(url);
      await self.__cell;
      post({ type: 'done', cellId: msg.cellId });
    } catch (e) {
      post({ type: 'error', cellId: msg.cellId, ...errorOutput(e) });
    } finally {
      URL.revokeObjectURL(url);
      if (runningCell === msg.cellId) runningCell = null;
    }
  });

  post({ type: 'ready' });
})();
