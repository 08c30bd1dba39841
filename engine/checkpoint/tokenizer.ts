/**
 * Text ↔ token ids through @huggingface/tokenizers, offline: it is handed the checkpoint's own
 * tokenizer.json and never touches a hub.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { EngineError, EngineErrorCode } from '../errors.ts';

export class TextTokenizer {
  private constructor(private readonly tok: Tokenizer, readonly addBos: boolean, readonly bosId: number | null) {}

  /** Loads tokenizer.json (+ tokenizer_config.json) from a checkpoint folder, or null if absent. */
  static load(dir: string, bosId: number | null): TextTokenizer | null {
    const file = join(dir, 'tokenizer.json');
    if (!existsSync(file)) return null;
    let json: unknown;
    let config: Record<string, unknown> = {};
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
      const cfgFile = join(dir, 'tokenizer_config.json');
      if (existsSync(cfgFile)) config = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new EngineError(EngineErrorCode.BAD_CONFIG, `tokenizer files in ${dir} are not valid JSON: ${String(e)}`);
    }
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(json as object, config);
    } catch (e) {
      // Valid JSON that is not a tokenizer the library can build (a missing decoder, an unknown model type).
      throw new EngineError(EngineErrorCode.BAD_CONFIG, `${file} is not a tokenizer this engine can load: ${e instanceof Error ? e.message : String(e)}`);
    }
    return new TextTokenizer(tok, config['add_bos_token'] === true, bosId);
  }

  encode(text: string): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    return this.addBos && this.bosId !== null ? [this.bosId, ...ids] : ids;
  }

  decode(ids: readonly number[], skipSpecial = false): string {
    return this.tok.decode([...ids], { skip_special_tokens: skipSpecial });
  }

  /** Text of a single token as it would print on its own. */
  tokenText(id: number): string {
    return this.decode([id]);
  }
}

/**
 * Turns a growing list of ids into text deltas. Byte-level tokens can split a UTF-8 character;
 * an unfinished character decodes to U+FFFD, so such a tail is held back until it completes.
 */
export class StreamingDetokenizer {
  private ids: number[] = [];
  private emitted = '';
  constructor(private readonly tok: TextTokenizer) {}

  push(id: number): string {
    this.ids.push(id);
    let text = this.tok.decode(this.ids, true);
    if (text.endsWith('\uFFFD')) return '';
    if (!text.startsWith(this.emitted)) text = this.emitted + text.slice(this.emitted.length);
    const delta = text.slice(this.emitted.length);
    this.emitted = text;
    return delta;
  }

  /** Whatever is still held back (a final incomplete character). */
  flush(): string {
    if (this.ids.length === 0) return '';
    const text = this.tok.decode(this.ids, true);
    const delta = text.length > this.emitted.length ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return delta;
  }

  get text(): string {
    return this.emitted;
  }
}
