/** The server's models: what loading one tells the person running the server. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ModelRegistry } from '../../server/models.ts';
import { testCacheDir } from '../helpers/cache.ts';
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
    assert.match(warnings[0]!, /tensors in the checkpoint are not used by the model: model\.layers\.2\..*the weights hold layer 2 but config\.json's num_hidden_layers is 2/);
  });
});
