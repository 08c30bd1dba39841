/** How a model is named in pickers: quantized models say so, so runs are never mistaken for float32 ones. */
import type { ModelSummary } from '../../server/protocol';

/** The model's id, with its weight format when it is not float32 ("olmoe · int4"). */
export function modelLabel(m: ModelSummary): string {
  return m.quant === 'none' ? m.id : `${m.id} · ${m.quant}`;
}

/** Hover text: weight format and, once loaded, the weights' size in memory, the context and any warnings. */
export function modelTitle(m: ModelSummary): string {
  const format =
    m.quant === 'none' ? 'float32 weights' : m.quant === 'int4' ? 'int4 routed experts (the first MoE layers\' int8; other weights float)' : `${m.quant} routed experts (other weights float)`;
  const size = m.weightBytes === null ? 'not loaded yet' : `${(m.weightBytes / 2 ** 20).toFixed(1)} MiB of weights in memory`;
  const context = m.contextLength === null ? '' : `, context ${m.contextLength} positions`;
  const warnings = (m.warnings ?? []).map((w) => `\nwarning: ${w}`).join('');
  return `${m.id}: ${format}, ${size}${context}${warnings}`;
}
