/** The server's models: what loading one tells the person running the server. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ModelRegistry } from '../../server/models.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { labServer, smallModel, TestClient } from '../helpers/lab-server.ts';
import { fixtureDir } from '../helpers/fixtures.ts';

describe('the model registry', () => {
  const dirs: string[] = [];
  let registry: ModelRegistry | null = null;
  after(async () => {
    await registry?.dispose();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('passes on a loaded model\'s warnings: here, weights of a layer config.json does not have', async () => {
    // The mixtral fixture has three layers; its config now says two.
    const root = mkdtempSync(join(tmpdir(), 'moe-lab-models-'));
    dirs.push(root);
    const dir = join(root, 'two-layers');
    const src = fixtureDir('mixtral');
    const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 2 }));
    symlinkSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
    const warnings: string[] = [];
    registry = new ModelRegistry([dir], { cacheDir: testCacheDir() }, (id, w) => warnings.push(`${id}: ${w}`));
    const { info } = await registry.engine('two-layers');
    assert.equal(info.warnings.length, 1);
    assert.deepEqual(warnings, [`two-layers: ${info.warnings[0]}`]);
    assert.deepEqual(registry.summary('two-layers').warnings, info.warnings, 'clients see it in the model list');
    assert.match(warnings[0]!, /tensors in the checkpoint are not used by the model: model\.layers\.2\..*the weights hold layer 2 but config\.json's num_hidden_layers is 2/);
  });

  it('a server started with a context cap says so in its model list and holds runs to it', async () => {
    const server = await labServer({ modelDirs: [await smallModel()], maxContext: 32 });
    try {
      const c = await TestClient.connect(server.url, { token: server.token });
      await c.hello();
      const runId = await c.generate({ model: 'tiny-random', promptIds: Array.from({ length: 40 }, (_, i) => i + 1), maxNewTokens: 2 });
      const events = await c.untilDone(runId);
      const last = events.at(-1)!;
      assert.ok(last.t === 'error' && last.code === 'ENGINE_PROMPT_TOO_LONG', JSON.stringify(last));
      c.send({ type: 'list_models', id: 'm1' });
      const listed = await c.waitFor((m) => m.type === 'models' && m.id === 'm1');
      assert.ok(listed.type === 'models');
      assert.equal(listed.models[0]!.contextLength, 32);
      await c.close();
    } finally {
      await server.close();
    }
  });
});
