/** Streaming detokenization: split UTF-8 characters are held back, and an empty stream flushes to nothing. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamingDetokenizer, TextTokenizer } from '../../engine/checkpoint/tokenizer.ts';
import { byteTokenizerJson } from '../helpers/checkpoints.ts';

function byteTokenizer(): TextTokenizer {
  const dir = mkdtempSync(join(tmpdir(), 'moe-lab-tok-'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(byteTokenizerJson()));
  return TextTokenizer.load(dir, null)!;
}

describe('streaming detokenizer', () => {
  it('holds back a character split across tokens until it is complete', () => {
    const d = new StreamingDetokenizer(byteTokenizer());
    const bytes = [...Buffer.from('aж', 'utf8')]; // 'ж' is two bytes
    assert.deepEqual(bytes.map((b) => d.push(b)), ['a', '', 'ж']);
    assert.equal(d.text, 'aж');
  });

  it('flushing before any token gives an empty string', () => {
    assert.equal(new StreamingDetokenizer(byteTokenizer()).flush(), '');
  });
});
