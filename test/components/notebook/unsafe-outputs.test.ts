/** Outputs hold data only: markup and script MIME types are stripped on load and can never be saved. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FormatWarningCode,
  NotebookFormatError,
  NotebookFormatErrorCode,
  exportIpynb,
  isCellKind,
  parseNotebook,
  serializeNotebook,
  type Notebook,
} from '../../../components/notebook/format/index.ts';
import { fullNotebook } from './fixtures.ts';

const UNSAFE = {
  'text/html': '<b onmouseover="alert(1)">hi</b><script>alert(1)</script>',
  'application/javascript': 'alert(1)',
  'image/svg+xml': '<svg onload="alert(1)"><script>alert(2)</script></svg>',
  'text/markdown': '[x](javascript:alert(1))',
  'application/vnd.jupyter.widget-view+json': { model_id: 'abc' },
  'image/png': 'iVBORw0KGgo=',
};

/** The full notebook with every unsafe type added to code-1's execute_result and a display of only unsafe types. */
function withUnsafe(): string {
  const doc = structuredClone(fullNotebook()) as unknown as { cells: { outputs?: Record<string, unknown>[]; attachments?: unknown }[] };
  const outputs = doc.cells[4]!.outputs!;
  outputs[2]!.data = { ...(outputs[2]!.data as object), ...UNSAFE };
  outputs.push({ output_type: 'display_data', data: { 'text/html': '<iframe src="https://evil.example"></iframe>' }, metadata: {} });
  outputs.push({ output_type: 'update_display_data', data: { 'text/plain': 'x' }, metadata: {}, transient: {} });
  doc.cells[0]!.attachments = { 'x.svg': { 'image/svg+xml': '<svg onload=alert(1)>' } };
  return JSON.stringify(doc);
}

describe('unsafe outputs', () => {
  it('strips every non-data MIME type on load, with one warning each', () => {
    const { notebook, warnings } = parseNotebook(withUnsafe());
    const stripped = warnings.filter((w) => w.code === FormatWarningCode.MIME_STRIPPED);
    assert.deepEqual(stripped.map((w) => w.details?.mime).sort(), [...Object.keys(UNSAFE), 'text/html'].sort());
    assert.ok(stripped.every((w) => w.cellId === 'code-1'));
    // With the unsafe parts gone, what is left is exactly the clean notebook.
    assert.deepEqual(notebook, fullNotebook());
  });

  it('drops an output left with no data, and outputs of unknown type, saying so', () => {
    const { warnings } = parseNotebook(withUnsafe());
    const dropped = warnings.filter((w) => w.code === FormatWarningCode.OUTPUT_DROPPED).map((w) => w.details?.outputType);
    assert.deepEqual(dropped, ['display_data', 'update_display_data']);
  });

  it('drops cell attachments, saying so', () => {
    const { notebook, warnings } = parseNotebook(withUnsafe());
    assert.ok(warnings.some((w) => w.code === FormatWarningCode.ATTACHMENTS_DROPPED && w.cellId === 'intro'));
    assert.ok(!('attachments' in notebook.cells[0]!));
  });

  it('never writes stripped content back: the saved text and the .ipynb hold none of it', () => {
    const { notebook } = parseNotebook(withUnsafe());
    const saved = serializeNotebook(notebook);
    const ipynb = JSON.stringify(exportIpynb(notebook));
    for (const text of [saved, ipynb]) {
      for (const mime of [...Object.keys(UNSAFE), 'attachments', 'update_display_data']) assert.ok(!text.includes(mime), mime);
      assert.ok(!/<script|<iframe|<svg|onload|onmouseover/i.test(text));
    }
    assert.deepEqual(parseNotebook(saved).warnings, []);
  });

  it('refuses to serialize or export a notebook object that carries HTML output', () => {
    const nb = fullNotebook();
    const cell = nb.cells[4]!;
    assert.ok(isCellKind(cell, 'code'));
    const output = cell.outputs[2]!;
    assert.equal(output.output_type, 'execute_result');
    // Only a cast can put it there; the writers must still refuse.
    (output.data as Record<string, unknown>)['text/html'] = '<script>alert(1)</script>';
    for (const write of [() => serializeNotebook(nb), () => exportIpynb(nb)]) {
      assert.throws(write, (e: unknown) => e instanceof NotebookFormatError && e.code === NotebookFormatErrorCode.INVALID && /text\/html/.test(e.message));
    }
  });

  it('keeps text that merely looks like markup, as data', () => {
    const { notebook, warnings } = parseNotebook(JSON.stringify(fullNotebook()));
    assert.deepEqual(warnings, []);
    const saved = serializeNotebook(notebook as Notebook);
    assert.ok(saved.includes('Packets drift east <img src=x onerror=alert(1)>'));
  });
});
