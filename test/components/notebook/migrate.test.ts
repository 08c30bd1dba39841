/** Upgrading older `.moenb` files: the v0 → v1 step and the migration machinery around it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FORMAT_VERSION,
  FormatWarningCode,
  MIGRATIONS,
  NotebookFormatError,
  NotebookFormatErrorCode,
  parseNotebook,
  serializeNotebook,
} from '../../../components/notebook/format/index.ts';
import { fullNotebook } from './fixtures.ts';

/** A notebook as version 0 wrote it: the model was a bare id string. */
function v0(model: unknown): string {
  const doc = structuredClone(fullNotebook()) as { metadata: { moelab: Record<string, unknown> } };
  doc.metadata.moelab = { format_version: 0, app_version: '0.0.9', model };
  return JSON.stringify(doc);
}

describe('notebook migration', () => {
  it('has one step per version below the current one', () => {
    assert.equal(FORMAT_VERSION, 1);
    assert.equal(MIGRATIONS.length, FORMAT_VERSION);
  });

  it('upgrades a v0 model id string to { id, hash: null } and says so', () => {
    const { notebook, warnings } = parseNotebook(v0('moe-lab-tiny'));
    assert.deepEqual(notebook.metadata.moelab, { format_version: 1, app_version: '0.0.9', model: { id: 'moe-lab-tiny', hash: null } });
    assert.deepEqual(
      warnings.map((w) => w.code),
      [FormatWarningCode.MIGRATED],
    );
    assert.deepEqual(warnings[0]!.details, { from: 0, to: 1 });
    // Everything but the pinned model is carried over untouched.
    assert.deepEqual(notebook.cells, fullNotebook().cells);
  });

  it('upgrades a v0 notebook with no model, or an empty one, to model null', () => {
    assert.equal(parseNotebook(v0(null)).notebook.metadata.moelab.model, null);
    assert.equal(parseNotebook(v0('')).notebook.metadata.moelab.model, null);
  });

  it('saves a migrated notebook in the current format, which then loads without warnings', () => {
    const saved = serializeNotebook(parseNotebook(v0('m')).notebook);
    assert.match(saved, /"format_version": 1/);
    assert.deepEqual(parseNotebook(saved).warnings, []);
  });

  it('still validates after migrating: a v0 file with a broken cell is refused', () => {
    const doc = JSON.parse(v0('m'));
    doc.cells[0].id = 'bad id';
    assert.throws(
      () => parseNotebook(JSON.stringify(doc)),
      (e: unknown) => e instanceof NotebookFormatError && e.code === NotebookFormatErrorCode.INVALID,
    );
  });

  for (const [what, version] of [
    ['negative', -1],
    ['fractional', 0.5],
    ['string', '1'],
    ['missing', undefined],
  ] as const) {
    it(`refuses a ${what} format_version with NOTEBOOK_FORMAT_INVALID`, () => {
      const doc = JSON.parse(v0('m'));
      doc.metadata.moelab.format_version = version;
      assert.throws(
        () => parseNotebook(JSON.stringify(doc)),
        (e: unknown) => e instanceof NotebookFormatError && e.code === NotebookFormatErrorCode.INVALID && /format_version/.test(e.message),
      );
    });
  }

  it('does not modify the parsed value it was given', async () => {
    const { parseNotebookValue } = await import('../../../components/notebook/format/index.ts');
    const doc = JSON.parse(v0('m'));
    const before = JSON.stringify(doc);
    parseNotebookValue(doc);
    assert.equal(JSON.stringify(doc), before);
  });
});
