/**
 * Notebooks on the server (REST) and the conversion between the `.moenb` file format and the
 * editor's model. Saves send the last known modification time, so a concurrent change elsewhere
 * is reported instead of overwritten.
 */
import { z } from 'zod';
import { notebookEntrySchema, type NotebookEntry, type RunEvent } from '../../server/protocol';
import { apiJson, apiOk } from '../api';
import {
  exportHtml, expertRefsText, MIME, newCodeCell, VIEW_KINDS, newNotebook, parseNotebook, serializeIpynb, serializeNotebook,
  type Cell as FileCell, type ExpertRef, type HtmlRunData, type Notebook, type Output,
} from './format';
import { parseExpertList, type Cell, type CellOutput, type NotebookModel, type PromptSettings, type VizSettings } from './model';

export const APP_VERSION = '0.1.0';

export type { NotebookEntry };

export interface LoadedNotebook {
  readonly path: string;
  readonly modified: string;
  readonly model: NotebookModel;
  /** The file as loaded (its title and other metadata are kept on save). */
  readonly file: Notebook;
  readonly warnings: string[];
}

/**
 * A notebook path as an API URL, a segment at a time. A `.` or `..` segment never reaches the server
 * (URLs resolve it before sending, escaped or not: `/api/notebooks/../x` would ask for `/api/x`), so
 * it is refused here, with the server's code for a path outside the notebook root.
 */
export function notebookUrl(path: string): string {
  const segments = path.split('/');
  if (segments.some((s) => /^(\.|%2e)+$/i.test(s) && s.replace(/%2e/gi, '.').length <= 2)) {
    throw new Error(`NOTEBOOK_BAD_PATH: '${path}' leaves the notebook folder ('.' and '..' are not names)`);
  }
  return `/api/notebooks/${segments.map(encodeURIComponent).join('/')}`;
}
const url = notebookUrl;

const entryAnswer = z.object({ entry: notebookEntrySchema });

export async function listNotebooks(): Promise<NotebookEntry[]> {
  return (await apiJson(await fetch('/api/notebooks'), z.object({ notebooks: z.array(notebookEntrySchema) }))).notebooks;
}

export async function createNotebook(path: string, model: { id: string; hash: string | null } | null = null): Promise<void> {
  const nb = newNotebook({ appVersion: APP_VERSION, model, cells: [newCodeCell()] });
  await apiOk(await fetch(url(path), { method: 'POST', body: serializeNotebook(nb), headers: { 'Content-Type': 'application/json' } }));
}

export async function renameNotebook(from: string, to: string): Promise<void> {
  await apiOk(await fetch(url(from), { method: 'PATCH', body: JSON.stringify({ to }), headers: { 'Content-Type': 'application/json' } }));
}

export async function deleteNotebook(path: string): Promise<void> {
  await apiOk(await fetch(url(path), { method: 'DELETE' }));
}

export async function loadNotebook(path: string): Promise<LoadedNotebook> {
  const body = await apiJson(await fetch(url(path)), entryAnswer.extend({ content: z.string() }));
  const { notebook, warnings } = parseNotebook(body.content);
  return { path, modified: body.entry.modified, file: notebook, model: fromFile(notebook), warnings: warnings.map((w) => w.message) };
}

/**
 * Saves over the version this page loaded (NOTEBOOK_CONFLICT if the file changed since), or, with
 * `overwrite`, over whatever is there now: the choice the page offers after a conflict.
 */
export async function saveNotebook(loaded: LoadedNotebook, model: NotebookModel, opts: { overwrite?: boolean } = {}): Promise<LoadedNotebook> {
  const file = toFile(loaded.file, model);
  const { entry } = await apiJson(
    await fetch(url(loaded.path), {
      method: 'PUT',
      body: serializeNotebook(file),
      headers: { 'Content-Type': 'application/json', ...(opts.overwrite ? {} : { 'x-expected-modified': loaded.modified }) },
    }),
    entryAnswer,
  );
  return { ...loaded, modified: entry.modified, file, model };
}

// ---- conversion ---------------------------------------------------------------------------
//
// Load → save must give back the file it was given: every setting the editor does not show (a
// view's options, a run's full summary, an output's type and MIME entries) rides along in the
// model, and absent or null settings stay absent or null.


/**
 * A ban or force field for the file: its expert list, or, when the text does not parse, the text
 * itself, so nothing typed is lost (the cell says what is wrong and will not run until fixed).
 */
function expertField(text: string): { refs: ExpertRef[] } | { unparsed: string } {
  try {
    return { refs: parseExpertList(text) };
  } catch {
    return { unparsed: text };
  }
}

function outputFromFile(o: Output): CellOutput {
  switch (o.output_type) {
    case 'stream':
      return { type: 'stream', name: o.name, text: o.text };
    case 'error':
      return { type: 'error', ename: o.ename, evalue: o.evalue, traceback: o.traceback };
    case 'execute_result':
    case 'display_data': {
      const run = o.data[MIME.RUN];
      if (run) return { type: 'run', runId: run.runId, modelId: run.modelId, modelHash: run.modelHash, status: run.status, ...(run.summary ? { summary: run.summary } : {}), loaded: o };
      const viz = o.data[MIME.VIZ];
      if (viz) return { type: 'display', kind: viz.kind, data: viz.data, loaded: o };
      return { type: 'display', kind: 'json', data: o.data[MIME.JSON] ?? o.data[MIME.TEXT] ?? null, loaded: o };
    }
    default: {
      const never: never = o;
      throw new Error(`unknown output ${JSON.stringify(never)}`);
    }
  }
}

const RUN_STATUS = ['queued', 'running', 'done', 'cancelled', 'failed', 'interrupted'] as const;

function outputToFile(o: CellOutput): Output {
  switch (o.type) {
    case 'stream':
      return { output_type: 'stream', name: o.name, text: o.text };
    case 'error':
      return { output_type: 'error', ename: o.ename, evalue: o.evalue, traceback: [...o.traceback] };
    case 'run': {
      const status = (RUN_STATUS as readonly string[]).includes(o.status) ? (o.status as (typeof RUN_STATUS)[number]) : 'interrupted';
      const bundle = { runId: o.runId, modelId: o.modelId, modelHash: o.modelHash, status, ...(o.summary ? { summary: o.summary } : {}) };
      // A new run stores no text/plain: the exports derive it from the bundle (the generated text,
      // or "[run …: failed]" when there is none), which an empty string here would hide.
      return o.loaded ? { ...o.loaded, data: { ...o.loaded.data, [MIME.RUN]: bundle } } : { output_type: 'display_data', metadata: {}, data: { [MIME.RUN]: bundle } };
    }
    case 'display': {
      if (o.loaded) return o.loaded;
      const data = JSON.parse(JSON.stringify(o.data ?? null)) as never;
      return (VIEW_KINDS as readonly string[]).includes(o.kind)
        ? { output_type: 'display_data', metadata: {}, data: { [MIME.VIZ]: { kind: o.kind as never, data } } }
        : { output_type: 'display_data', metadata: {}, data: { [MIME.JSON]: data } };
    }
    default: {
      const never: never = o;
      throw new Error(`unknown output ${JSON.stringify(never)}`);
    }
  }
}

export function fromFile(nb: Notebook): NotebookModel {
  const cells = nb.cells.map((c): Cell => {
    const m = c.metadata.moelab;
    if (c.cell_type === 'markdown') return { id: c.id, kind: 'markdown', source: c.source, outputs: [], executionCount: null };
    const base = { id: c.id, source: c.source, outputs: c.outputs.map(outputFromFile), executionCount: c.execution_count };
    switch (m.kind) {
      case 'code':
        return { ...base, kind: 'code' };
      case 'prompt': {
        const s = m.sampling;
        const prompt: PromptSettings = {
          model: m.model,
          ...(s.maxNewTokens !== undefined ? { maxNewTokens: s.maxNewTokens } : {}),
          ...(s.temperature !== undefined ? { temperature: s.temperature } : {}),
          ...(s.topP !== undefined ? { topP: s.topP } : {}),
          ...(s.topK !== undefined ? { topKSampling: s.topK } : {}),
          ...(s.seed !== undefined ? { seed: s.seed } : {}),
          ban: m.unparsed?.ban ?? expertRefsText(m.interventions.ban),
          force: m.unparsed?.force ?? expertRefsText(m.interventions.force),
          ...(m.interventions.topK !== undefined ? { expertsPerToken: m.interventions.topK } : {}),
        };
        return { ...base, kind: 'prompt', prompt };
      }
      case 'viz': {
        const viz: VizSettings = { view: m.view, source: m.source, ...(m.sourceB !== undefined ? { sourceB: m.sourceB } : {}), options: m.options };
        return { ...base, kind: 'viz', viz };
      }
      default:
        return { ...base, kind: 'code' };
    }
  });
  return { cells, model: nb.metadata.moelab.model };
}

export function toFile(base: Notebook, model: NotebookModel): Notebook {
  const cells = model.cells.map((c): FileCell => {
    const outputs = c.outputs.map(outputToFile);
    switch (c.kind) {
      case 'markdown':
        return { id: c.id, cell_type: 'markdown', source: c.source, metadata: { moelab: { kind: 'markdown' } } };
      case 'code':
        return { id: c.id, cell_type: 'code', source: c.source, metadata: { moelab: { kind: 'code' } }, execution_count: c.executionCount, outputs };
      case 'prompt': {
        const p = c.prompt!;
        const ban = expertField(p.ban);
        const force = expertField(p.force);
        const unparsed = { ...('unparsed' in ban ? { ban: ban.unparsed } : {}), ...('unparsed' in force ? { force: force.unparsed } : {}) };
        return {
          id: c.id,
          cell_type: 'code',
          source: c.source,
          execution_count: c.executionCount,
          outputs,
          metadata: {
            moelab: {
              kind: 'prompt',
              model: p.model || null,
              sampling: {
                ...(p.maxNewTokens !== undefined ? { maxNewTokens: p.maxNewTokens } : {}),
                ...(p.temperature !== undefined ? { temperature: p.temperature } : {}),
                ...(p.topP !== undefined ? { topP: p.topP } : {}),
                ...(p.topKSampling !== undefined ? { topK: p.topKSampling } : {}),
                ...(p.seed !== undefined ? { seed: p.seed } : {}),
              },
              interventions: {
                ...('refs' in ban && ban.refs.length ? { ban: ban.refs } : {}),
                ...('refs' in force && force.refs.length ? { force: force.refs } : {}),
                ...(p.expertsPerToken !== undefined ? { topK: p.expertsPerToken } : {}),
              },
              ...(Object.keys(unparsed).length ? { unparsed } : {}),
            },
          },
        };
      }
      case 'viz': {
        const v = c.viz!;
        return {
          id: c.id,
          cell_type: 'code',
          source: c.source,
          execution_count: c.executionCount,
          outputs,
          metadata: { moelab: { kind: 'viz', view: v.view, source: v.source, ...(v.sourceB !== undefined ? { sourceB: v.sourceB } : {}), options: v.options ?? {} } },
        };
      }
      default: {
        const never: never = c.kind;
        throw new Error(`unknown cell kind ${String(never)}`);
      }
    }
  });
  return { ...base, metadata: { ...base.metadata, moelab: { ...base.metadata.moelab, app_version: APP_VERSION, model: model.model } }, cells };
}

// ---- exports (in the browser: the server never renders notebooks) --------------------------

function download(name: string, type: string, text: string): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

const baseName = (path: string) => (path.split('/').pop() ?? 'notebook').replace(/\.moenb$/, '');

export function downloadIpynb(loaded: LoadedNotebook, model: NotebookModel): void {
  download(`${baseName(loaded.path)}.ipynb`, 'application/x-ipynb+json', serializeIpynb(toFile(loaded.file, model)));
}

/** Token texts coloured by their top-1 expert at each MoE layer, from the runs the page holds. */
export function htmlRunData(events: RunEvent[]): HtmlRunData {
  const tokens = new Map<number, { text: string; top1Expert?: (number | null)[] }>();
  for (const e of events) {
    // As the page's views label it: the text the token adds when it has one (a split character whole).
    if (e.t === 'token') tokens.set(e.index, { text: e.delta || (e.text ?? `[${e.id}]`) });
    if (e.t === 'routing') {
      const k = e.ids.length / Math.max(1, e.h.length);
      const t = tokens.get(e.index);
      if (t) t.top1Expert = e.h.map((_, m) => e.ids[m * k] ?? null);
    }
  }
  return { tokens: [...tokens.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => t) };
}

export function downloadHtml(loaded: LoadedNotebook, model: NotebookModel, runs: Record<string, RunEvent[]>): void {
  const data = Object.fromEntries(Object.entries(runs).map(([id, evs]) => [id, htmlRunData(evs)]));
  download(`${baseName(loaded.path)}.html`, 'text/html', exportHtml(toFile(loaded.file, model), { runs: data, title: baseName(loaded.path) }));
}
