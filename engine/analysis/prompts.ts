/**
 * Prompt files for `moe-lab trace`: JSON Lines, one prompt per line,
 *   {"prompt": "…", "id": "…", "domain": "code", …}  or  {"prompt_ids": [1, 2, 3], …}
 * Extra scalar fields become per-run string columns (so `analyze --by domain` works); other
 * extra values are kept in the run's metadata only.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { badInput } from './errors.ts';
import { isBaseColumn } from './rows.ts';
import { FIELD_NAME, type JsonObject } from './trace.ts';

export interface PromptSpec {
  /**
   * The run id: the line's `id`, else `prompt-<hash of the line's content>` (`.2`, `.3`, … added for
   * repeats of a line), so inserting or removing lines elsewhere leaves every other run's id as it was.
   */
  readonly runId: string;
  /** 1-based line number in the file. */
  readonly line: number;
  readonly prompt?: string;
  readonly promptIds?: readonly number[];
  readonly fields: Readonly<Record<string, string>>;
  readonly extra: JsonObject;
}

const lineSchema = z
  .object({
    prompt: z.string().min(1).optional(),
    prompt_ids: z.array(z.number().int().nonnegative()).min(1).optional(),
    id: z.union([z.string().min(1).max(256), z.number().int()]).optional(),
  })
  .catchall(z.json());

/** A digest of a line's meaning, independent of key order and spacing. */
function contentHash(v: unknown): string {
  const canon = (x: unknown): unknown =>
    Array.isArray(x) ? x.map(canon) : x && typeof x === 'object' ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, y]) => [k, canon(y)])) : x;
  return createHash('sha256').update(JSON.stringify(canon(v))).digest('hex').slice(0, 10);
}

export function parsePrompts(text: string, where = 'prompts'): PromptSpec[] {
  const out: PromptSpec[] = [];
  const seen = new Map<string, number>();
  /** Field names by their lower case: SQL engines read `Domain` and `domain` as one column. */
  const spelled = new Map<string, { name: string; line: number }>();
  const repeats = new Map<string, number>();
  // An editor's byte-order mark is not part of the first line.
  text.replace(/^\uFEFF/, '').split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw badInput(`${where}:${line}: not JSON`);
    }
    const r = lineSchema.safeParse(json);
    if (!r.success) throw badInput(`${where}:${line}: ${r.error.issues[0]?.path.join('.') || 'line'}: ${r.error.issues[0]?.message}`);
    const { prompt, prompt_ids: promptIds, id, ...rest } = r.data;
    if ((prompt === undefined) === (promptIds === undefined)) {
      // Data sets often call the text "text"; say which key to rename rather than only what is missing.
      const hint = prompt === undefined && typeof rest['text'] === 'string' ? ' (this line has "text": rename it "prompt")' : '';
      throw badInput(`${where}:${line}: give exactly one of "prompt" and "prompt_ids"${hint}`);
    }
    const fields: Record<string, string> = {};
    const extra: JsonObject = {};
    for (const [key, value] of Object.entries(rest)) {
      if (value === null) continue;
      if (typeof value === 'object') {
        extra[key] = value;
        continue;
      }
      if (!FIELD_NAME.test(key)) throw badInput(`${where}:${line}: field '${key}' cannot be a column name (letters, digits and _ only)`);
      if (isBaseColumn(key.toLowerCase())) throw badInput(`${where}:${line}: field '${key}' has the name of a trace column; rename it`);
      const first = spelled.get(key.toLowerCase());
      if (first && first.name !== key) {
        throw badInput(`${where}:${line}: field '${key}' differs from '${first.name}' (line ${first.line}) only in case; one column cannot be both`);
      }
      if (!first) spelled.set(key.toLowerCase(), { name: key, line });
      fields[key] = String(value);
    }
    let runId = String(id ?? '');
    if (id === undefined) {
      const hash = contentHash(r.data);
      const n = (repeats.get(hash) ?? 0) + 1;
      repeats.set(hash, n);
      runId = n === 1 ? `prompt-${hash}` : `prompt-${hash}.${n}`;
    }
    const dup = seen.get(runId);
    if (dup !== undefined) throw badInput(`${where}:${line}: run id '${runId}' was already used on line ${dup}`);
    seen.set(runId, line);
    out.push({ runId, line, ...(prompt !== undefined ? { prompt } : {}), ...(promptIds ? { promptIds } : {}), fields, extra });
  });
  if (out.length === 0) throw badInput(`${where}: no prompts`);
  return out;
}

/** Reads and parses a prompts file; an unreadable file is TRACE_BAD_INPUT like a malformed one. */
export function readPromptsFile(path: string): PromptSpec[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw badInput(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parsePrompts(text, path);
}
