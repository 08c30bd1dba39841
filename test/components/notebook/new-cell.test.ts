/** Cells added in the editor get valid ids wherever the page is served from. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CELL_ID_PATTERN } from '../../../components/notebook/format/index.ts';
import { newCell } from '../../../components/notebook/model.ts';

/** Runs `f` with a Web Crypto that lacks randomUUID, as on a page served over plain http from another machine. */
function withoutRandomUUID<T>(f: () => T): T {
  const real = Object.getOwnPropertyDescriptor(globalThis, 'crypto')!;
  const insecure = { getRandomValues: globalThis.crypto.getRandomValues.bind(globalThis.crypto) };
  Object.defineProperty(globalThis, 'crypto', { value: insecure, configurable: true });
  try {
    return f();
  } finally {
    Object.defineProperty(globalThis, 'crypto', real);
  }
}

describe('adding a cell in the editor', () => {
  it('works without crypto.randomUUID (a page on plain http), giving distinct valid ids', () => {
    const cells = withoutRandomUUID(() => Array.from({ length: 50 }, () => newCell('prompt')));
    const ids = cells.map((c) => c.id);
    for (const id of ids) assert.match(id, CELL_ID_PATTERN);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(typeof globalThis.crypto.randomUUID, 'function', 'the real crypto is back');
  });

  it("makes a prompt cell that uses the notebook's model unless given one", () => {
    assert.equal(newCell('prompt').prompt!.model, null);
    assert.equal(newCell('prompt', '').prompt!.model, null);
    assert.equal(newCell('prompt', 'tiny').prompt!.model, 'tiny');
  });
});
