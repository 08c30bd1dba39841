/** Deterministic serialization: the same notebook always gives the same bytes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson, parseNotebook, serializeNotebook, type Notebook } from '../../../components/notebook/format/index.ts';
import { fullNotebook, randomNotebook, seeded, shuffleKeys } from './fixtures.ts';

describe('notebook serialization', () => {
  it('writes sorted keys, a one-space indent and a trailing newline, as Jupyter does', () => {
    const text = serializeNotebook(fullNotebook());
    assert.ok(text.endsWith('}\n') && !text.endsWith('\n\n'));
    assert.ok(text.startsWith('{\n "cells": [\n  {\n'), text.slice(0, 40));
    const topKeys = [...text.matchAll(/^ "([^"]+)":/gm)].map((m) => m[1]);
    assert.deepEqual(topKeys, ['cells', 'metadata', 'nbformat', 'nbformat_minor']);
    assert.equal(text, JSON.stringify(JSON.parse(text), sortedReplacer, 1) + '\n');
  });

  it('keeps cell order while sorting keys', () => {
    const nb = fullNotebook();
    const ids = nb.cells.map((c) => c.id);
    assert.deepEqual(parseNotebook(serializeNotebook(nb)).notebook.cells.map((c) => c.id), ids);
    const reversed: Notebook = { ...nb, cells: [...nb.cells].reverse() };
    assert.deepEqual(parseNotebook(serializeNotebook(reversed)).notebook.cells.map((c) => c.id), [...ids].reverse());
    assert.notEqual(serializeNotebook(reversed), serializeNotebook(nb));
  });

  it('gives identical text for the same notebook built with its keys in any order', () => {
    const rand = seeded(7);
    const expected = serializeNotebook(fullNotebook());
    for (let i = 0; i < 20; i++) assert.equal(serializeNotebook(shuffleKeys(fullNotebook(), rand)), expected);
  });

  it('is a fixed point: serialize(parse(serialize(x))) === serialize(x), on 300 random notebooks', () => {
    const rand = seeded(20240601);
    for (let i = 0; i < 300; i++) {
      const nb = randomNotebook(rand);
      const once = serializeNotebook(nb);
      const twice = serializeNotebook(parseNotebook(once).notebook);
      assert.equal(twice, once, `case ${i}`);
      assert.equal(serializeNotebook(shuffleKeys(nb, rand)), once, `case ${i} (shuffled keys)`);
      assert.deepEqual(parseNotebook(once).warnings, []);
    }
  });

  it('orders integer-like keys as text, not as JavaScript property order would', () => {
    assert.equal(canonicalJson({ 10: 'a', 2: 'b', b: 1, a: 2 }), '{\n "10": "a",\n "2": "b",\n "a": 2,\n "b": 1\n}\n');
  });

  it('keeps non-ASCII text as is and escapes only what JSON requires', () => {
    const nb = fullNotebook();
    nb.cells[0]!.source = 'café 日本 🙂 "q" \\ \u2028 \u0001';
    const text = serializeNotebook(nb);
    assert.ok(text.includes('café 日本 🙂 \\"q\\" \\\\ \u2028 \\u0001'));
    assert.equal(parseNotebook(text).notebook.cells[0]!.source, nb.cells[0]!.source);
  });

  it('refuses to write numbers JSON cannot hold rather than writing null', () => {
    assert.throws(() => canonicalJson({ x: Number.NaN }), TypeError);
    assert.throws(() => canonicalJson([Infinity]), TypeError);
  });

  it('writes empty containers compactly and skips undefined object fields', () => {
    assert.equal(canonicalJson({ a: [], b: {}, c: undefined }), '{\n "a": [],\n "b": {}\n}\n');
  });
});

/** JSON.stringify replacer that rebuilds objects with sorted keys: an independent reference. */
function sortedReplacer(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
