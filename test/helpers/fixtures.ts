/** Access to the Hugging Face reference fixtures (../shared/fixtures/hf-reference). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = process.env['MOE_LAB_FIXTURES'] ?? resolve(REPO_ROOT, '..', 'shared', 'fixtures', 'hf-reference');

const arraySchema = z.object({ file: z.string(), dtype: z.enum(['float32', 'int32']), shape: z.array(z.number()) });
const expectedSchema = z.object({
  moe_layers: z.array(z.number()),
  top_k: z.number(),
  num_experts: z.number(),
  prompts: z.array(
    z.object({
      name: z.string(),
      input_ids: z.array(z.number()),
      generated_ids: z.array(z.number()),
      arrays: z.record(z.string(), arraySchema),
    }),
  ),
});

export type Expected = z.infer<typeof expectedSchema>;

/** The fixture folder of one architecture; throws (never skips) if CI lacks the fixtures. */
export function fixtureDir(arch: string): string {
  const dir = join(FIXTURES, arch);
  if (!existsSync(join(dir, 'expected.json'))) {
    throw new Error(`reference fixtures missing: ${dir} (set MOE_LAB_FIXTURES or place ../shared next to the repo)`);
  }
  return dir;
}

export function loadExpected(arch: string): Expected {
  return expectedSchema.parse(JSON.parse(readFileSync(join(fixtureDir(arch), 'expected.json'), 'utf8')));
}

export function readArray(arch: string, prompt: Expected['prompts'][number], name: string): Float32Array | Int32Array {
  const a = prompt.arrays[name];
  if (!a) throw new Error(`${arch}/${prompt.name}: no array ${name}`);
  const buf = readFileSync(join(fixtureDir(arch), a.file));
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const arr = a.dtype === 'float32' ? new Float32Array(ab) : new Int32Array(ab);
  const n = a.shape.reduce((x, y) => x * y, 1);
  if (arr.length !== n) throw new Error(`${a.file}: ${arr.length} values, shape says ${n}`);
  return arr;
}
