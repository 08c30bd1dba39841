/** Plain-text descriptions of MoE Lab data, for readers without the app (Jupyter, static HTML). */
import type { ExpertRef, RunBundle, ViewKind, VizMeta, VizSource } from './schema';

/** An expert list as a prompt cell's ban/force field takes it: `layer:expert`, `*` for every layer. */
export function expertRefsText(refs: readonly ExpertRef[] | undefined): string {
  return (refs ?? []).map((r) => `${r.layer === 'all' ? '*' : r.layer}:${r.expert}`).join(', ');
}

export const VIEW_LABELS: Readonly<Record<ViewKind, string>> = {
  'token-strip': 'token strip',
  'routing-grid': 'routing grid',
  heatmap: 'expert heatmap',
  latency: 'latency chart',
  coactivation: 'expert co-activation matrix',
  compare: 'run comparison',
};

/** What a prompt cell's run produced: its generated text when known, else which run it was. */
export function runText(run: RunBundle): string {
  const text = run.summary?.text;
  return typeof text === 'string' ? text : `[run ${run.runId}: ${run.status}]`;
}

function sourceText(source: VizSource): string {
  return 'runId' in source ? `run ${source.runId}` : `the output of cell ${source.cellId}`;
}

export function describeVizSource(meta: VizMeta): string {
  if (meta.source === null) return 'no data chosen yet';
  const b = meta.sourceB ? ` and ${sourceText(meta.sourceB)}` : '';
  return sourceText(meta.source) + b;
}

/** A viz cell in words: the view, and what it draws. */
export function describeVizCell(meta: VizMeta): string {
  return `MoE Lab ${VIEW_LABELS[meta.view]} of ${describeVizSource(meta)}. Open the notebook in MoE Lab to see it.`;
}

/** A visualization payload in words (the payload itself is data for the app to draw). */
export function describeVizKind(kind: ViewKind): string {
  return `MoE Lab ${VIEW_LABELS[kind]}. Open the notebook in MoE Lab to see it.`;
}
