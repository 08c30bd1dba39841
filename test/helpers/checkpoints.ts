/**
 * Throw-away checkpoint folders for tests, made from a reference fixture: with a byte-level
 * tokenizer (the fixtures' vocabulary is exactly 256), with a patched config, or with damaged files.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtureDir } from './fixtures.ts';

/** GPT-2's byte → printable character map, which byte-level BPE vocabularies use. */
export function byteLevelAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const chars: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) chars[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  return chars;
}

/** A byte-level BPE tokenizer with no merges: token id = byte value. */
export function byteTokenizerJson(): object {
  const vocab: Record<string, number> = {};
  byteLevelAlphabet().forEach((c, b) => (vocab[c] = b));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
}

export interface CheckpointOptions {
  readonly from?: string;
  readonly tokenizer?: boolean;
  readonly patchConfig?: (c: Record<string, unknown>) => Record<string, unknown>;
  /** `fp8`: the first tensor's header says F8_E4M3 (as DeepSeek-V3's release stores its matrices). */
  readonly weights?: 'copy' | 'none' | 'corrupt-header' | 'fp8';
  readonly withConfig?: boolean;
}

export function makeCheckpoint(opts: CheckpointOptions = {}): string {
  const src = fixtureDir(opts.from ?? 'mixtral');
  const dir = mkdtempSync(join(tmpdir(), 'moe-lab-ckpt-'));
  if (opts.withConfig !== false) {
    let config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    if (opts.patchConfig) config = opts.patchConfig(config);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  }
  const weights = opts.weights ?? 'copy';
  if (weights === 'copy') copyFileSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
  if (weights === 'corrupt-header') {
    const bytes = readFileSync(join(src, 'model.safetensors'));
    // Keep the length prefix, break the JSON after it.
    bytes.write('{"broken', 8, 'utf8');
    writeFileSync(join(dir, 'model.safetensors'), bytes);
  }
  if (weights === 'fp8') {
    const bytes = readFileSync(join(src, 'model.safetensors'));
    const headerLen = Number(bytes.readBigUInt64LE(0));
    const header = bytes.subarray(8, 8 + headerLen).toString('utf8').replace('"F32"', '"F8_E4M3"');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
    writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([prefix, Buffer.from(header), bytes.subarray(8 + headerLen)]));
  }
  if (opts.tokenizer) writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(byteTokenizerJson()));
  return dir;
}
