/** The welcome notebook ships valid and runs on the built-in model; a new notebook root starts with it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseNotebook } from '../../components/notebook/format/index.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';

describe('the welcome notebook', () => {
  it('parses cleanly and every prompt runs on the built-in model', () => {
    const { notebook, warnings } = parseNotebook(readFileSync(join(REPO_ROOT, 'server', 'notebooks', 'welcome.moenb'), 'utf8'));
    assert.deepEqual(warnings, []);
    const kinds = notebook.cells.map((c) => c.metadata.moelab.kind);
    for (const k of ['markdown', 'prompt', 'viz', 'code']) assert.ok(kinds.includes(k as never), `has a ${k} cell`);
    const models = notebook.cells.flatMap((c) => (c.metadata.moelab.kind === 'prompt' ? [(c.metadata.moelab as { model: string | null }).model] : []));
    assert.ok(models.length >= 3 && models.every((m) => m === 'moe-lab-tiny'));
    // It demonstrates a ban, and compares with and without it.
    assert.ok(notebook.cells.some((c) => c.metadata.moelab.kind === 'prompt' && JSON.stringify(c.metadata).includes('"ban"')));
    assert.ok(notebook.cells.some((c) => c.metadata.moelab.kind === 'viz' && (c.metadata.moelab as { view: string }).view === 'compare'));
    // The compared runs differ only in the ban: same text, same sampling and seed.
    const byId = new Map(notebook.cells.map((c) => [c.id, c]));
    const compare = notebook.cells.find((c) => c.metadata.moelab.kind === 'viz' && (c.metadata.moelab as { view: string }).view === 'compare')!;
    const { source, sourceB } = compare.metadata.moelab as { source: { cellId: string }; sourceB: { cellId: string } };
    const [a, b] = [byId.get(source.cellId)!, byId.get(sourceB.cellId)!];
    assert.equal(a.source, b.source);
    const settings = (c: typeof a) => JSON.stringify((c.metadata.moelab as { sampling: unknown }).sampling);
    assert.equal(settings(a), settings(b));
  });
});
