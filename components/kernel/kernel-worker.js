// The notebook kernel: one dedicated worker per notebook. Code cells arrive as JavaScript (the page
// transpiles TypeScript and hoists top-level declarations, see hoist.ts) and run as classic scripts
// in this worker's global scope, so values persist from cell to cell. Output goes back to the page
// as messages; the `lab` API forwards calls to the page, which owns the server connection.
'use strict';

let currentCell = null;
let nextCall = 1;
const calls = new Map();

function post(msg) {
  self.postMessage(msg);
}

function format(value) {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.stack || String(value);
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

function stream(name) {
  return (...args) => post({ type: 'stream', cellId: currentCell, name, text: args.map(format).join(' ') + '\n' });
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
  show: (kind, data) => post({ type: 'display', cellId: currentCell, kind, data: JSON.parse(JSON.stringify(data ?? null)) }),
});

self.onmessage = async (event) => {
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
  const url = URL.createObjectURL(new Blob([msg.script], { type: 'application/javascript' }));
  try {
    importScripts(url);
    await self.__cell;
    post({ type: 'done', cellId: msg.cellId });
  } catch (e) {
    post({ type: 'error', cellId: msg.cellId, ename: (e && e.name) || 'Error', evalue: (e && e.message) || String(e), traceback: e && e.stack ? String(e.stack).split('\n') : [] });
  } finally {
    URL.revokeObjectURL(url);
  }
};

post({ type: 'ready' });
