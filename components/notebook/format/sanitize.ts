/**
 * Removes what a notebook file may contain but MoE Lab never keeps: output MIME types that carry
 * markup or script, unknown output types, and cell attachments. Stripping (with a warning each)
 * rather than refusing the file means a notebook that picked up an HTML output elsewhere still
 * opens; the schema then guarantees none of it can be saved again.
 *
 * Runs on the raw parsed JSON, before validation, so it checks shapes as it goes and leaves
 * anything it does not understand for the schema to reject.
 */
import { isPlainObject } from './json';
import { ALLOWED_MIME_TYPES } from './schema';
import { FormatWarningCode, type FormatWarning } from './warnings';

const BUNDLE_OUTPUTS = new Set(['execute_result', 'display_data']);
const KEPT_OUTPUTS = new Set(['stream', 'error', ...BUNDLE_OUTPUTS]);

function cellIdOf(cell: Record<string, unknown>): string | undefined {
  return typeof cell.id === 'string' ? cell.id : undefined;
}

/** Records a warning, leaving `cellId` out entirely when the cell has none. */
function warn(warnings: FormatWarning[], w: FormatWarning): void {
  const { cellId, ...rest } = w;
  warnings.push(cellId === undefined ? rest : w);
}

/** Returns the outputs to keep, recording why anything went. */
function sanitizeOutputs(outputs: unknown[], cellId: string | undefined, warnings: FormatWarning[]): unknown[] {
  const kept: unknown[] = [];
  for (const output of outputs) {
    if (!isPlainObject(output) || typeof output.output_type !== 'string') {
      kept.push(output);
      continue;
    }
    const type = output.output_type;
    if (!KEPT_OUTPUTS.has(type)) {
      warn(warnings, { code: FormatWarningCode.OUTPUT_DROPPED, message: `removed an output of unsupported type "${type}"`, cellId, details: { outputType: type } });
      continue;
    }
    if (BUNDLE_OUTPUTS.has(type) && isPlainObject(output.data)) {
      const data: Record<string, unknown> = {};
      let stripped = 0;
      for (const [mime, value] of Object.entries(output.data)) {
        if (ALLOWED_MIME_TYPES.includes(mime)) {
          data[mime] = value;
          continue;
        }
        stripped++;
        warn(warnings, { code: FormatWarningCode.MIME_STRIPPED, message: `removed "${mime}" output data: only text, JSON and MoE Lab data are kept`, cellId, details: { mime } });
      }
      if (stripped > 0 && Object.keys(data).length === 0) {
        warn(warnings, { code: FormatWarningCode.OUTPUT_DROPPED, message: `removed an output that had no data left`, cellId, details: { outputType: type } });
        continue;
      }
      kept.push({ ...output, data });
      continue;
    }
    kept.push(output);
  }
  return kept;
}

/** A copy of `doc` without disallowed outputs and attachments, and what was removed. */
export function stripUnsafeContent(doc: unknown): { doc: unknown; warnings: FormatWarning[] } {
  const warnings: FormatWarning[] = [];
  if (!isPlainObject(doc) || !Array.isArray(doc.cells)) return { doc, warnings };
  const cells = doc.cells.map((cell) => {
    if (!isPlainObject(cell)) return cell;
    const cellId = cellIdOf(cell);
    let out: Record<string, unknown> = cell;
    if ('attachments' in out) {
      const { attachments: _dropped, ...rest } = out;
      out = rest;
      warn(warnings, { code: FormatWarningCode.ATTACHMENTS_DROPPED, message: 'removed cell attachments', cellId });
    }
    if (Array.isArray(out.outputs)) out = { ...out, outputs: sanitizeOutputs(out.outputs, cellId, warnings) };
    return out;
  });
  return { doc: { ...doc, cells }, warnings };
}
