/**
 * Export to one self-contained, static HTML page: inline CSS, no scripts at all, and a Content
 * Security Policy that would block any script or remote load even if markup slipped through.
 * Everything that came from the notebook or a run is escaped; markdown goes through the safe
 * renderer. Interactive views cannot be drawn without script, so viz cells are described in words.
 */
import { z } from 'zod';
import { canonicalJson } from './canonical-json';
import { describeVizCell, describeVizKind, expertRefsText, runText } from './describe';
import { escapeHtml, stripAnsi } from './escape';
import { renderMarkdown } from './markdown';
import { MIME, isCellKind, runSummarySchema, type Cell, type CodeLikeCell, type MimeBundle, type Notebook, type NotebookInput, type Output, type PromptCell, type RunBundle, type RunSummary, type Sampling } from './schema';
import { validateNotebook } from './serialize';

export const HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/** Per-token data of a run, as the app fetched it, for colouring the generated text. */
export const htmlRunTokenSchema = z
  .object({
    text: z.string(),
    /** The top-1 expert at each MoE layer, in layer order; null where unknown. */
    top1Expert: z.array(z.number().int().min(0).nullable()).optional(),
  })
  .strict();
export const htmlRunDataSchema = z.object({ tokens: z.array(htmlRunTokenSchema), summary: runSummarySchema.optional() }).strict();
export type HtmlRunToken = z.infer<typeof htmlRunTokenSchema>;
export type HtmlRunData = z.infer<typeof htmlRunDataSchema>;

export interface HtmlExportOptions {
  /** Run data by run id; prompt cells whose run is here show coloured tokens. */
  runs?: Readonly<Record<string, HtmlRunData>>;
  /** Which entry of `top1Expert` colours the tokens (default: the last MoE layer, as in the app's token strip). */
  colorLayer?: number;
  /** Page title when the notebook has none. */
  title?: string;
}

const STYLE = `
:root { color-scheme: light; --fg: #1d2330; --muted: #5d6577; --line: #d9dde6; --code: #f4f6fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #fff; }
main { max-width: 920px; margin: 0 auto; padding: 32px 20px 64px; }
header.nb { border-bottom: 1px solid var(--line); margin-bottom: 24px; }
header.nb h1 { margin: 0 0 4px; font-size: 1.6em; }
.meta { color: var(--muted); font-size: 0.85em; }
.meta code { font-size: 1em; }
section.cell { margin: 0 0 20px; }
.kind { display: inline-block; font-size: 0.72em; letter-spacing: 0.04em; text-transform: uppercase; color: var(--muted); margin-bottom: 4px; }
pre { background: var(--code); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; margin: 0 0 8px; }
code { font: 0.92em/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.md code { background: var(--code); padding: 0 3px; border-radius: 3px; }
.md pre code { background: none; padding: 0; }
.md blockquote { margin: 0 0 8px; padding-left: 12px; border-left: 3px solid var(--line); color: var(--muted); }
.output { border-left: 3px solid var(--line); padding-left: 10px; }
.output pre { background: #fff; }
.stderr, .error { color: #a02020; }
.params { list-style: none; padding: 0; margin: 0 0 6px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
.tokens { white-space: pre-wrap; word-break: break-word; font: 0.95em/1.9 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.tok { border-radius: 3px; padding: 1px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 10px; list-style: none; padding: 0; margin: 6px 0 0; font-size: 0.8em; color: var(--muted); }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px; vertical-align: -0.1em; margin-right: 4px; }
`;

/** A stable, well-spread colour per expert; computed from a number, never from input text. */
function expertColor(expert: unknown): string | null {
  if (typeof expert !== 'number' || !Number.isInteger(expert) || expert < 0) return null;
  const hue = (expert * 137.508) % 360;
  return `hsl(${hue.toFixed(1)} 70% 82%)`;
}

function pre(text: string, cls?: string): string {
  return `<pre${cls ? ` class="${cls}"` : ''}>${escapeHtml(text)}</pre>`;
}

function ownEntry<T>(record: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  // Object.hasOwn: a run id such as "constructor" must not find Object.prototype's members.
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

function summaryLine(summary: RunSummary | undefined): string {
  if (!summary) return '';
  const parts: string[] = [];
  if (summary.promptTokens !== undefined) parts.push(`${summary.promptTokens} prompt tokens`);
  if (summary.generatedTokens !== undefined) parts.push(`${summary.generatedTokens} generated`);
  if (summary.reason !== undefined) parts.push(`stopped: ${summary.reason}`);
  if (summary.totalMs !== undefined) parts.push(`${Math.round(summary.totalMs)} ms`);
  if (typeof summary.decodeTokensPerSecond === 'number') parts.push(`${summary.decodeTokensPerSecond.toFixed(1)} tok/s`);
  return parts.length > 0 ? `<div class="meta">${escapeHtml(parts.join(' · '))}</div>` : '';
}

/** The last MoE layer a run's tokens have routing for (a loop: a spread of every token can overflow the stack). */
function lastLayer(data: HtmlRunData): number {
  let layers = 0;
  for (const t of data.tokens) layers = Math.max(layers, t.top1Expert?.length ?? 0);
  return Math.max(0, layers - 1);
}

function tokenStrip(data: HtmlRunData, colorLayer: number): string {
  const experts = new Set<number>();
  const spans = data.tokens.map((tok) => {
    const top1 = Array.isArray(tok.top1Expert) ? tok.top1Expert : [];
    const expert = top1[colorLayer];
    const color = expertColor(expert);
    if (color !== null) experts.add(expert as number);
    const title = top1.map((e, layer) => `layer ${layer}: ${expertColor(e) === null ? '?' : `expert ${e}`}`).join(', ');
    const attrs = `${color !== null ? ` style="background:${color}"` : ''}${title !== '' ? ` title="${escapeHtml(title)}"` : ''}`;
    return `<span class="tok"${attrs}>${escapeHtml(String(tok.text))}</span>`;
  });
  const legend = [...experts]
    .sort((a, b) => a - b)
    .map((e) => `<li><span class="swatch" style="background:${expertColor(e)}"></span>expert ${e}</li>`)
    .join('');
  const legendHtml = legend !== '' ? `<ul class="legend">${legend}</ul><div class="meta">coloured by the top-1 expert at MoE layer index ${colorLayer}</div>` : '';
  return `<div class="tokens">${spans.join('')}</div>${legendHtml}${summaryLine(data.summary)}`;
}

/** A run: its tokens when the caller passed them, else its summary text, else the bundle's own text. */
function runOutput(run: RunBundle, bundleText: string | undefined, options: HtmlExportOptions): string {
  const data = ownEntry(options.runs, run.runId);
  const head = `<div class="meta">run <code>${escapeHtml(run.runId)}</code> · ${escapeHtml(run.status)} · model <code>${escapeHtml(run.modelId)}</code></div>`;
  if (data !== undefined) return head + tokenStrip(data, options.colorLayer ?? lastLayer(data));
  // An empty text/plain says nothing about a run (older saves wrote one for failed runs); the
  // status line does.
  const text = typeof run.summary?.text === 'string' ? run.summary.text : bundleText !== undefined && bundleText !== '' ? bundleText : runText(run);
  return head + pre(text) + summaryLine(run.summary);
}

function bundleHtml(data: MimeBundle, options: HtmlExportOptions): string {
  // The richest entry wins, as a notebook front end would choose.
  const run = data[MIME.RUN];
  if (run !== undefined) return runOutput(run, data[MIME.TEXT], options);
  const viz = data[MIME.VIZ];
  if (viz !== undefined) return `<p class="meta">${escapeHtml(describeVizKind(viz.kind))}</p>`;
  const json = data[MIME.JSON];
  if (json !== undefined) return pre(canonicalJson(json).trimEnd());
  const text = data[MIME.TEXT];
  return text !== undefined ? pre(text) : '';
}

function outputHtml(output: Output, options: HtmlExportOptions): string {
  switch (output.output_type) {
    case 'stream':
      return pre(stripAnsi(output.text), output.name === 'stderr' ? 'stderr' : undefined);
    case 'error':
      // As in Jupyter, a traceback already names the error; only a bare error needs the header.
      return pre(stripAnsi(output.traceback.length > 0 ? output.traceback.join('\n') : `${output.ename}: ${output.evalue}`), 'error');
    case 'execute_result':
    case 'display_data':
      return bundleHtml(output.data, options);
  }
}

function outputsHtml(cell: CodeLikeCell, options: HtmlExportOptions): string {
  const parts = cell.outputs.map((o) => outputHtml(o, options)).filter((s) => s !== '');
  return parts.length > 0 ? `<div class="output">${parts.join('\n')}</div>` : '';
}

const SAMPLING_LABELS: readonly [keyof Sampling, string][] = [
  ['temperature', 'temperature'],
  ['topK', 'top-k'],
  ['topP', 'top-p'],
  ['seed', 'seed'],
  ['maxNewTokens', 'max new tokens'],
];

function promptParams(cell: PromptCell, nb: Notebook): string {
  const meta = cell.metadata.moelab;
  const items: string[] = [];
  const model = meta.model ?? nb.metadata.moelab.model?.id ?? null;
  items.push(`model ${model ?? '(notebook default)'}`);
  for (const [key, label] of SAMPLING_LABELS) {
    const value = meta.sampling[key];
    if (value !== undefined) items.push(`${label} ${value}`);
  }
  const refs = (label: string, list: PromptCell['metadata']['moelab']['interventions']['ban']) =>
    list && list.length > 0 ? [`${label} ${expertRefsText(list)}`] : [];
  items.push(...refs('ban', meta.interventions.ban), ...refs('force', meta.interventions.force));
  // Text that is not a valid expert list is shown as typed, flagged, since the cell cannot run with it.
  for (const key of ['ban', 'force'] as const) {
    const typed = meta.unparsed?.[key];
    if (typed !== undefined) items.push(`${key} (not a valid expert list) ${typed}`);
  }
  if (meta.interventions.topK !== undefined) items.push(`experts per token ${meta.interventions.topK}`);
  return `<ul class="params meta">${items.map((i) => `<li>${escapeHtml(i)}</li>`).join('')}</ul>`;
}

function cellHtml(cell: Cell, nb: Notebook, options: HtmlExportOptions): string {
  const label = `<div class="kind">${cell.metadata.moelab.kind}</div>`;
  if (isCellKind(cell, 'markdown')) return `<section class="cell markdown"><div class="md">${renderMarkdown(cell.source)}</div></section>`;
  if (isCellKind(cell, 'prompt')) {
    return `<section class="cell prompt">${label}${promptParams(cell, nb)}${pre(cell.source)}${outputsHtml(cell, options)}</section>`;
  }
  if (isCellKind(cell, 'viz')) {
    const caption = cell.source.trim() !== '' ? `<p>${escapeHtml(cell.source)}</p>` : '';
    return `<section class="cell viz">${label}${caption}<p class="meta">${escapeHtml(describeVizCell(cell.metadata.moelab))}</p>${outputsHtml(cell, options)}</section>`;
  }
  if (isCellKind(cell, 'code')) return `<section class="cell code">${label}<pre><code>${escapeHtml(cell.source)}</code></pre>${outputsHtml(cell, options)}</section>`;
  return '';
}

function headerHtml(nb: Notebook, title: string): string {
  const meta = nb.metadata.moelab;
  const model = meta.model ? `model <code>${escapeHtml(meta.model.id)}</code>${meta.model.hash ? ` (hash <code>${escapeHtml(meta.model.hash)}</code>)` : ''} · ` : '';
  return `<header class="nb"><h1>${escapeHtml(title)}</h1><p class="meta">${model}MoE Lab ${escapeHtml(meta.app_version)} · format ${meta.format_version}</p></header>`;
}

/** The notebook as one static HTML page (see the module comment). Validates the notebook first. */
export function exportHtml(input: Notebook | NotebookInput, options: HtmlExportOptions = {}): string {
  const nb = validateNotebook(input);
  const title = nb.metadata.title ?? options.title ?? 'MoE Lab notebook';
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${escapeHtml(HTML_CSP)}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="referrer" content="no-referrer">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    '<main>',
    headerHtml(nb, title),
    ...nb.cells.map((c) => cellHtml(c, nb, options)),
    '</main>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
