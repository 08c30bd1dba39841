/** Notebooks for the format tests: one with every cell kind and output type, and random ones. */
import type { Cell, JsonValue, Notebook, Output } from '../../../components/notebook/format/index.ts';

export const XSS = '<img src=x onerror=alert(1)>';

/** Every cell kind, every output type, a run with and without summary text, hostile text throughout. */
export function fullNotebook(): Notebook {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      moelab: { format_version: 1, app_version: '0.1.0', model: { id: 'moe-lab-tiny', hash: 'sha256:abc123' } },
      title: `Routing study ${XSS}`,
    },
    cells: [
      {
        id: 'intro',
        cell_type: 'markdown',
        source: `# Routing study\n\nWhich experts fire on *code*? See [the docs](https://example.com/docs).\n\n${XSS}\n\n- one\n- two\n`,
        metadata: { moelab: { kind: 'markdown' } },
      },
      {
        id: 'prompt-1',
        cell_type: 'code',
        source: `Write a haiku about routers ${XSS}`,
        metadata: {
          moelab: {
            kind: 'prompt',
            model: null,
            sampling: { temperature: 0.7, topK: 40, topP: 0.95, seed: 42, maxNewTokens: 32 },
            interventions: { ban: [{ layer: 1, expert: 3 }], force: [{ layer: 'all', expert: 0 }], topK: 2 },
          },
        },
        execution_count: 1,
        outputs: [
          {
            output_type: 'display_data',
            data: {
              'application/vnd.moelab.run+json': {
                runId: 'run_01',
                modelId: 'moe-lab-tiny',
                modelHash: 'sha256:abc123',
                status: 'done',
                summary: { text: `Packets drift east ${XSS}`, reason: 'length', promptTokens: 7, generatedTokens: 32, totalMs: 120.5, ttftMs: 10, decodeTokensPerSecond: 250 },
              },
            },
            metadata: {},
          },
        ],
      },
      {
        id: 'prompt-unrun',
        cell_type: 'code',
        source: 'Once upon a time',
        metadata: { moelab: { kind: 'prompt', model: 'other-model', sampling: {}, interventions: {} } },
        execution_count: null,
        outputs: [],
      },
      {
        id: 'prompt-failed',
        cell_type: 'code',
        source: 'Hello',
        metadata: { moelab: { kind: 'prompt', model: null, sampling: { seed: 0 }, interventions: {} } },
        execution_count: 2,
        outputs: [
          {
            output_type: 'display_data',
            data: {
              'application/vnd.moelab.run+json': { runId: 'run_02', modelId: 'moe-lab-tiny', modelHash: null, status: 'failed' },
              'text/plain': 'the run failed',
            },
            metadata: {},
          },
        ],
      },
      {
        id: 'code-1',
        cell_type: 'code',
        source: 'const r = await lab.run("run_01");\nconsole.log(r.tokens.length);\nconsole.error("careful");\nr.summary',
        metadata: { moelab: { kind: 'code' } },
        execution_count: 3,
        outputs: [
          { output_type: 'stream', name: 'stdout', text: `32\n${XSS}\n` },
          { output_type: 'stream', name: 'stderr', text: 'careful\n' },
          { output_type: 'execute_result', execution_count: 3, data: { 'text/plain': '{ tokens: 32 }', 'application/json': { tokens: 32, note: XSS } }, metadata: {} },
          { output_type: 'display_data', data: { 'application/vnd.moelab.viz+json': { kind: 'heatmap', data: { rows: [[1, 0], [0, 1]] } } }, metadata: {} },
          { output_type: 'error', ename: 'TypeError', evalue: `x is undefined ${XSS}`, traceback: [`\u001b[31mTypeError\u001b[0m: x is undefined ${XSS}`, '    at cell code-1:2'] },
        ],
      },
      {
        id: 'code-unrun',
        cell_type: 'code',
        source: '',
        metadata: { moelab: { kind: 'code' } },
        execution_count: null,
        outputs: [],
      },
      {
        id: 'viz-1',
        cell_type: 'code',
        source: 'Top-1 expert per token',
        metadata: { moelab: { kind: 'viz', view: 'token-strip', source: { runId: 'run_01' }, options: { layer: 2, normalise: true } } },
        execution_count: null,
        outputs: [],
      },
      {
        id: 'viz-2',
        cell_type: 'code',
        source: '',
        metadata: { moelab: { kind: 'viz', view: 'compare', source: { cellId: 'prompt-1' }, sourceB: { runId: 'run_02' }, options: {} } },
        execution_count: 4,
        outputs: [{ output_type: 'display_data', data: { 'application/vnd.moelab.viz+json': { kind: 'compare', data: [1, 2, 3] } }, metadata: {} }],
      },
    ],
  };
}

/** A seeded generator (the engine's), so random cases are the same on every run. */
export { seededRandom as seeded } from '../../../engine/generate/sampling';

const ALPHABET = ['a', 'Z', '0', ' ', '\n', '\t', '"', '\\', '<', '>', '&', "'", 'é', '日', '🙂', '\u2028', '#', '*', '_', '`', '{', '}', '[', ']'];

export function randomText(rand: () => number, max = 40): string {
  const n = Math.floor(rand() * max);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

function randomJson(rand: () => number, depth = 0): JsonValue {
  const r = rand();
  if (depth > 2 || r < 0.3) return pick(rand, [null, true, false, Math.round(rand() * 1000) / 7, -3, 0, randomText(rand, 8)]);
  if (r < 0.6) return Array.from({ length: Math.floor(rand() * 4) }, () => randomJson(rand, depth + 1));
  const obj: Record<string, JsonValue> = {};
  for (let i = Math.floor(rand() * 4); i > 0; i--) obj[pick(rand, ['b', 'a', '10', '2', 'key', 'Ä'])] = randomJson(rand, depth + 1);
  return obj;
}

function randomOutputs(rand: () => number): Output[] {
  return Array.from({ length: Math.floor(rand() * 3) }, (): Output => {
    switch (Math.floor(rand() * 4)) {
      case 0:
        return { output_type: 'stream', name: pick(rand, ['stdout', 'stderr'] as const), text: randomText(rand) };
      case 1:
        return { output_type: 'execute_result', execution_count: rand() < 0.5 ? null : 5, data: { 'text/plain': randomText(rand), 'application/json': randomJson(rand) }, metadata: {} };
      case 2:
        return { output_type: 'display_data', data: { 'application/vnd.moelab.viz+json': { kind: 'latency', data: randomJson(rand) } }, metadata: {} };
      default:
        return { output_type: 'error', ename: 'Error', evalue: randomText(rand), traceback: [randomText(rand), randomText(rand)] };
    }
  });
}

export function randomNotebook(rand: () => number): Notebook {
  const cells: Cell[] = Array.from({ length: Math.floor(rand() * 6) }, (_, i): Cell => {
    const id = `c${i}-${Math.floor(rand() * 1e6)}`;
    const source = randomText(rand);
    switch (Math.floor(rand() * 4)) {
      case 0:
        return { id, cell_type: 'markdown', source, metadata: { moelab: { kind: 'markdown' } } };
      case 1:
        return { id, cell_type: 'code', source, metadata: { moelab: { kind: 'code' } }, execution_count: rand() < 0.5 ? null : i, outputs: randomOutputs(rand) };
      case 2:
        return {
          id,
          cell_type: 'code',
          source,
          metadata: {
            moelab: {
              kind: 'prompt',
              model: rand() < 0.5 ? null : 'm',
              sampling: rand() < 0.5 ? {} : { temperature: Math.round(rand() * 200) / 100, seed: Math.floor(rand() * 1000) },
              interventions: rand() < 0.5 ? {} : { ban: [{ layer: 'all', expert: 1 }] },
            },
          },
          execution_count: null,
          outputs: [],
        };
      default:
        return {
          id,
          cell_type: 'code',
          source,
          metadata: { moelab: { kind: 'viz', view: 'heatmap', source: rand() < 0.5 ? null : { runId: 'r1' }, options: { x: randomJson(rand) } } },
          execution_count: null,
          outputs: randomOutputs(rand),
        };
    }
  });
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { moelab: { format_version: 1, app_version: '0.1.0', model: rand() < 0.5 ? null : { id: 'm', hash: null } }, ...(rand() < 0.5 ? { title: randomText(rand) } : {}) },
    cells,
  };
}

/** A deep copy with every object's keys inserted in a shuffled order (arrays keep theirs). */
export function shuffleKeys<T>(value: T, rand: () => number): T {
  if (Array.isArray(value)) return value.map((v) => shuffleKeys(v, rand)) as T;
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries) out[k] = shuffleKeys(v, rand);
  return out as T;
}
