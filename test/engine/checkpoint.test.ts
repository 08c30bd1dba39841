/** Checkpoint loading: dtypes, sharded safetensors, the graph cache and its key, weights the model does not use. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkpointHash, openCheckpoint } from '../../engine/checkpoint/checkpoint.ts';
import { halfToFloat, readSafetensorsHeader, TensorStore, toFloat32 } from '../../engine/checkpoint/safetensors.ts';
import { EngineError, EngineErrorCode } from '../../engine/errors.ts';
import { floatToBf16, writeSafetensors, type TensorDecl } from '../../engine/checkpoint/safetensors-writer.ts';
import { runImport } from '../../engine/cli/import.ts';
import { compileGraph } from '../../engine/graph/compile.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { capture } from '../helpers/capture.ts';
import { fixtureDir } from '../helpers/fixtures.ts';

const PROMPT = [42, 238, 148, 144, 98, 217, 10, 62, 202, 236, 187, 240];

async function prefillLogits(dir: string): Promise<Float32Array> {
  const r = await ModelRunner.load(dir, { cacheDir: testCacheDir() });
  try {
    return (await r.step({ ids: PROMPT, logitIndex: PROMPT.map((_, i) => i), routeBias: null, topK: 2 })).logits;
  } finally {
    await r.dispose();
  }
}

/** Re-writes the mixtral fixture: `dtype` weights, split over `shards` files with an index when > 1. */
async function rewrite(dtype: 'F32' | 'BF16', shards: number, roundToBf16 = false): Promise<string> {
  const src = new TensorStore(fixtureDir('mixtral'));
  const dir = mkdtempSync(join(tmpdir(), 'moe-lab-rewrite-'));
  copyFileSync(join(fixtureDir('mixtral'), 'config.json'), join(dir, 'config.json'));
  const names = src.names.sort();
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const part = names.filter((_, i) => i % shards === s);
    const file = shards === 1 ? 'model.safetensors' : `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const decls: TensorDecl[] = part.map((name) => ({ name, dtype, shape: src.info(name).shape }));
    await writeSafetensors(join(dir, file), decls, (d) => {
      const v = src.read(d.name);
      return roundToBf16 ? toFloat32(new Uint8Array(floatToBf16(v).buffer), 'BF16') : v;
    });
    for (const n of part) weightMap[n] = file;
  }
  if (shards > 1) writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return dir;
}

describe('checkpoint loading', () => {
  it('converts half-precision and bfloat16 bit patterns exactly', () => {
    assert.equal(halfToFloat(0x3c00), 1);
    assert.equal(halfToFloat(0xc000), -2);
    assert.equal(halfToFloat(0x7bff), 65504);
    assert.equal(halfToFloat(0x0001), 2 ** -24);
    assert.equal(halfToFloat(0x7c00), Infinity);
    const bf = toFloat32(new Uint8Array(Uint16Array.of(0x3f80, 0xc040, 0x3e20).buffer), 'BF16');
    assert.deepEqual([...bf], [1, -3, 0.15625]);
    const f16 = toFloat32(new Uint8Array(Uint16Array.of(0x3c00, 0x3800).buffer), 'F16');
    assert.deepEqual([...f16], [1, 0.5]);
    assert.deepEqual([...floatToBf16(Float32Array.of(1, -3, 1.00390625))], [0x3f80, 0xc040, 0x3f80]);
  });

  it('a sharded checkpoint gives the same logits as the single file', async () => {
    const single = await prefillLogits(fixtureDir('mixtral'));
    const sharded = await prefillLogits(await rewrite('F32', 3));
    assert.deepEqual(sharded, single);
  });

  it('a sharded checkpoint reads each tensor from the shard its index names, and the index is part of its identity', async () => {
    const dir = await rewrite('F32', 2);
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    const cacheDir = mkdtempSync(join(tmpdir(), 'moe-lab-cache-'));
    const before = await checkpointHash(openCheckpoint(dir), cacheDir);
    // The same map written in another order: another file, so another identity.
    const reordered = Object.fromEntries(Object.entries(index.weight_map).reverse());
    writeFileSync(indexFile, JSON.stringify({ weight_map: reordered }));
    assert.notEqual(await checkpointHash(openCheckpoint(dir), cacheDir), before);
    // A tensor the index puts in the other shard is not read from where it happens to be.
    const [name, shard] = Object.entries(index.weight_map)[0]!;
    const other = Object.values(index.weight_map).find((f) => f !== shard)!;
    writeFileSync(indexFile, JSON.stringify({ weight_map: { ...index.weight_map, [name]: other } }));
    assert.throws(() => new TensorStore(dir), (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.CORRUPT_SAFETENSORS && e.message.includes(name));
  });

  it('bfloat16 weights load as exactly the bfloat16 values', async () => {
    // An F32 checkpoint holding bf16-rounded values and a BF16 checkpoint must agree bit for bit.
    const viaF32 = await prefillLogits(await rewrite('F32', 1, true));
    const viaBf16 = await prefillLogits(await rewrite('BF16', 2));
    assert.deepEqual(viaBf16, viaF32);
  });

  it('the graph is built once and then served from the cache; changed weights get a new entry', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'moe-lab-cache-'));
    const dir = await rewrite('F32', 1);
    const first = await compileGraph(openCheckpoint(dir), { routingOutputs: true }, cacheDir);
    const second = await compileGraph(openCheckpoint(dir), { routingOutputs: true }, cacheDir);
    assert.equal(first.built, true);
    assert.equal(second.built, false);
    assert.equal(second.modelPath, first.modelPath);
    assert.match(first.hash, /^[0-9a-f]{64}$/);
    // Flip one byte of weight data: a different checkpoint, a different graph.
    const file = join(dir, 'model.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0x01;
    writeFileSync(file, bytes);
    const third = await compileGraph(openCheckpoint(dir), { routingOutputs: true }, cacheDir);
    assert.equal(third.built, true);
    assert.notEqual(third.hash, first.hash);
  });

  it("a build killed mid-way leaves nothing behind once the entry is built again; a live process's build is left alone", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'moe-lab-cache-'));
    const dir = await rewrite('F32', 1);
    const entry = dirname((await compileGraph(openCheckpoint(dir), { routingOutputs: true }, cacheDir)).modelPath);
    const child = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => child.once('exit', r));
    const dead = `${entry}.tmp-${child.pid}-1`;
    const live = `${entry}.tmp-${process.ppid}-1`;
    for (const d of [dead, live]) {
      mkdirSync(d);
      writeFileSync(join(d, 'weights.bin'), 'partial');
    }
    rmSync(entry, { recursive: true });
    assert.equal((await compileGraph(openCheckpoint(dir), { routingOutputs: true }, cacheDir)).built, true);
    assert.ok(!existsSync(dead), 'the dead build is removed');
    assert.ok(existsSync(live), "a running process's build is kept");
  });

  it('a build that fails closes its weights file', { skip: process.platform !== 'linux' }, async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'moe-lab-cache-'));
    const dir = await rewrite('F32', 1);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 48 })); // weights no longer fit
    const open = () => readdirSync('/proc/self/fd').length;
    const before = open();
    for (let i = 0; i < 10; i++) await assert.rejects(compileGraph(openCheckpoint(dir), { routingOutputs: true }, cacheDir));
    assert.ok(open() - before < 3, `${open() - before} descriptors left open by 10 failed builds`);
  });
});

/** Temporary folders the tests below made. */
const scratch: string[] = [];

/**
 * A fixture's weights under `config` (patched), plus `extra` tensors (zeros) written into a copy of
 * its safetensors; without extras the fixture's file is linked, not copied.
 */
async function variant(arch: string, config: Record<string, unknown>, extra: { name: string; shape: number[] }[] = []): Promise<string> {
  const src = fixtureDir(arch);
  const dir = mkdtempSync(join(tmpdir(), 'moe-lab-variant-'));
  scratch.push(dir);
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, ...config }));
  if (extra.length === 0) {
    symlinkSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  const store = new TensorStore(src);
  const decls: TensorDecl[] = [...store.names.map((name) => ({ name, dtype: 'F32' as const, shape: store.info(name).shape })), ...extra.map((t) => ({ ...t, dtype: 'F32' as const }))];
  await writeSafetensors(join(dir, 'model.safetensors'), decls, (d) => (store.has(d.name) ? store.read(d.name) : new Float32Array(d.shape.reduce((a, b) => a * b, 1))));
  return dir;
}

describe('weights the model does not use', () => {
  after(() => scratch.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  it('are named in a warning by moe-lab import and in its result, also when the graph comes from the cache', async () => {
    // The fixture has 3 layers; config.json now says 2, and one tensor belongs to no module at all.
    // A rotary inv_freq buffer, as older checkpoints saved, is left out as transformers leaves it out.
    const dir = await variant('mixtral', { num_hidden_layers: 2 }, [
      { name: 'model.vision_tower.proj.weight', shape: [4, 4] },
      { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [8] },
    ]);
    const layer2 = new TensorStore(fixtureDir('mixtral')).names.filter((n) => n.startsWith('model.layers.2.'));
    assert.ok(layer2.length > 20);
    const want = [...layer2, 'model.vision_tower.proj.weight'].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    const cacheDir = mkdtempSync(join(tmpdir(), 'moe-lab-cache-'));
    scratch.push(cacheDir);
    for (const built of [true, false]) {
      const err = capture();
      const r = await runImport([dir, '--cache', cacheDir], capture().stream, err.stream);
      assert.equal(r.built, built);
      assert.deepEqual(r.unusedTensors, want);
      const warning = err.text().split('\n').find((l) => l.startsWith('warning: '));
      assert.ok(warning, `no warning in:\n${err.text()}`);
      assert.match(warning, new RegExp(`^warning: ${want.length} tensors in the checkpoint are not used by the model: `));
      for (const n of want.slice(0, 5)) assert.ok(warning.includes(n), `${n} is named`);
      assert.match(warning, /… \(\d+ more\)/);
      assert.match(warning, /the weights hold layer 2 but config\.json's num_hidden_layers is 2/);
      assert.ok(!warning.includes('inv_freq'));
    }
  });

  it('a checkpoint the model reads whole, and leftovers transformers ignores too, give no warning', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'moe-lab-cache-'));
    scratch.push(cacheDir);
    const unused = async (dir: string) => (await compileGraph(openCheckpoint(dir), { routingOutputs: true }, cacheDir)).unusedTensors;
    assert.deepEqual(await unused(fixtureDir('mixtral')), []);
    assert.deepEqual(await unused(fixtureDir('deepseek_v3')), []);
    // Tied embeddings: the stored output head goes unread, as in transformers, which ties it away.
    assert.deepEqual(await unused(await variant('mixtral', { tie_word_embeddings: true })), []);
    // DeepSeek's multi-token-prediction layer sits after the last decoder layer (V3: layer 61, after 0–60).
    assert.deepEqual(await unused(await variant('deepseek_v3', { num_hidden_layers: 2, num_nextn_predict_layers: 1 })), []);
    const noMtp = await unused(await variant('deepseek_v3', { num_hidden_layers: 2 }));
    assert.ok(noMtp.length > 0 && noMtp.every((n) => n.startsWith('model.layers.2.')));
  });
});

describe('safetensors layout', () => {
  /** A file with the given header entries over `dataBytes` bytes of data. */
  function file(entries: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>, dataBytes: number): string {
    const header = Buffer.from(JSON.stringify(entries), 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const path = join(mkdtempSync(join(tmpdir(), 'moe-lab-st-')), 'model.safetensors');
    writeFileSync(path, Buffer.concat([len, header, Buffer.alloc(dataBytes)]));
    return path;
  }
  const corrupt = (path: string) =>
    assert.throws(() => readSafetensorsHeader(path), (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.CORRUPT_SAFETENSORS, path);

  it('reads tensors that tile the data area exactly', () => {
    const t = readSafetensorsHeader(file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F16', shape: [4], data_offsets: [8, 16] } }, 16));
    assert.deepEqual(t.map((x) => x.name).sort(), ['a', 'b']);
  });

  it('refuses two tensors over the same bytes, a gap, and bytes after the last tensor', () => {
    corrupt(file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 8));
    corrupt(file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] } }, 20));
    corrupt(file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 12));
  });

  it("refuses a dtype named like an object's own property", () => {
    assert.throws(() => readSafetensorsHeader(file({ a: { dtype: 'constructor', shape: [1], data_offsets: [0, 4] } }, 4)), (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.BAD_WEIGHTS);
  });
});
