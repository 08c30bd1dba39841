/**
 * The mixtral reference fixture scaled up: the same architecture settings (8 experts, top-2, rope
 * θ 10⁴, eps 1e-5, vocabulary 256, two query heads per KV head) at widths where block
 * quantization means something (hidden 512, expert intermediate 512, 4 layers), with weights made
 * the way the fixture's were: N(0, 0.02) for matrices and embeddings, ones for norms, then
 * N(0, 0.1) noise on every parameter. Written once per cache folder.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../../engine/checkpoint/safetensors-writer.ts';
import { seededRandom } from '../../engine/generate/sampling.ts';
import { mixtralConfigDims, mixtralTensorDecls } from '../bench/random-checkpoint.ts';
import { fixtureDir } from './fixtures.ts';
import { normalFrom } from './normal.ts';

export const SCALED = { layers: 4, hidden: 512, heads: 8, kvHeads: 4, experts: 8, topK: 2, ffn: 512, vocab: 256 } as const;

export async function scaledMixtral(cacheDir: string): Promise<string> {
  const s = SCALED;
  const dir = join(cacheDir, 'checkpoints', `mixtral-fixture-scaled-L${s.layers}-d${s.hidden}-F${s.ffn}`);
  if (existsSync(join(dir, 'model.safetensors'))) return dir;
  mkdirSync(dir, { recursive: true });
  const decls = mixtralTensorDecls(s, 'F32');
  const random = seededRandom(2024);
  const normal = normalFrom(random);
  await writeSafetensors(join(dir, 'model.safetensors'), decls, (d) => {
    const n = d.shape.reduce((a, b) => a * b, 1);
    if (d.name.endsWith('norm.weight')) return Float32Array.from({ length: n }, () => 1 + 0.1 * normal());
    // The fixture's N(0, 0.1) noise at fan-in 64, kept at the same gain per layer for wider inputs.
    const noise = d.name.includes('embed') ? 0.1 : 0.1 * Math.sqrt(64 / d.shape[1]!);
    return Float32Array.from({ length: n }, () => 0.02 * normal() + noise * normal());
  });
  const config = JSON.parse(readFileSync(join(fixtureDir('mixtral'), 'config.json'), 'utf8')) as Record<string, unknown>;
  Object.assign(config, mixtralConfigDims(s));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return dir;
}
