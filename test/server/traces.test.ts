/** Trace export and analysis over the REST API, read back by an independent Parquet reader. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { randomUUID } from 'node:crypto';
import { exportStream, loadTraces } from '../../engine/analysis/formats/index.ts';
import { traceSource } from '../../server/api.ts';
import type { GenerateParams, RunEvent } from '../../server/protocol.ts';
import { RunStore } from '../../server/store/run-store.ts';
import { labServer, smallModel, TestClient } from '../helpers/lab-server.ts';

describe('trace export over REST', () => {
  let server: Awaited<ReturnType<typeof labServer>>;
  let runA = '';
  let runB = '';
  const auth = () => ({ Authorization: `Bearer ${server.token}` });
  const PROMPT = [5, 6, 7, 8, 9];

  before(async () => {
    server = await labServer({ modelDirs: [await smallModel()] });
    const c = await TestClient.connect(server.url, { token: server.token });
    await c.hello();
    runA = await c.generate({ model: 'tiny-random', promptIds: PROMPT, maxNewTokens: 12, ignoreEos: true });
    await c.untilDone(runA);
    runB = await c.generate({ model: 'tiny-random', prompt: 'a, "quoted"\nline', maxNewTokens: 6, ignoreEos: true, interventions: { ban: [{ layer: 'all', expert: 3 }] } });
    await c.untilDone(runB);
    await c.close();
  });
  after(async () => server.close());

  it('a run exported as Parquet reads back in DuckDB with one row per position, layer and rank', async () => {
    const res = await fetch(`${server.url}/api/runs/${runA}/trace?format=parquet`, { headers: auth() });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-disposition') ?? '', /\.parquet"/);
    const file = join(mkdtempSync(join(tmpdir(), 'moe-lab-trace-')), 'a.parquet');
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    const db = await (await DuckDBInstance.create(':memory:')).connect();
    const rows = (await db.runAndReadAll(`select count(*)::int as n, count(distinct token_index)::int as t, count(distinct layer)::int as l, max(rank)::int as r from read_parquet('${file}')`)).getRowObjects()[0]!;
    // 5 prompt + 12 generated positions, 4 MoE layers, top-2.
    assert.deepEqual(rows, { n: 17 * 4 * 2, t: 17, l: 4, r: 1 });
    const stored = (await (await fetch(`${server.url}/api/runs/${runA}`, { headers: auth() })).json()) as { events: { t: string; index?: number; ids?: number[] }[] };
    const first = stored.events.find((e) => e.t === 'routing' && e.index === 0)!;
    const experts = (await db.runAndReadAll(`select expert::int as e from read_parquet('${file}') where token_index = 0 order by layer, rank`)).getRowObjects().map((r) => r['e']);
    assert.deepEqual(experts, first.ids);
  });

  it('several runs export as JSONL and CSV, with run metadata and safe quoting', async () => {
    const jsonl = await (await fetch(`${server.url}/api/traces?format=jsonl&runs=${runA},${runB}`, { headers: auth() })).text();
    const lines = jsonl.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const rows = lines.filter((l) => 'expert' in l);
    assert.equal(rows.length, 17 * 4 * 2 + (new TextEncoder().encode('a, "quoted"\nline').length + 6) * 4 * 2);
    assert.ok(rows.filter((r) => r['run_id'] === runB).every((r) => r['expert'] !== 3), 'the banned expert never appears');
    const csv = await fetch(`${server.url}/api/traces?format=csv&runs=${runB}`, { headers: auth() });
    assert.match(csv.headers.get('content-type') ?? '', /text\/csv/);
    assert.ok((await csv.text()).includes('"""'), 'quotes inside token text are escaped');
    const sidecar = (await (await fetch(`${server.url}/api/traces?format=csv&runs=${runB}&part=sidecar`, { headers: auth() })).json()) as { runs: { run_id: string; prompt: string; params: Record<string, unknown> }[] };
    assert.deepEqual(sidecar.runs.map((r) => [r.run_id, r.prompt]), [[runB, 'a, "quoted"\nline']], 'the sidecar is the run metadata document');
    // Recorded as moe-lab trace records them: snake_case, what the engine ran (the seed it drew).
    const params = sidecar.runs[0]!.params;
    assert.deepEqual(Object.keys(params), ['max_new_tokens', 'temperature', 'top_p', 'seed', 'ignore_eos', 'interventions']);
    assert.deepEqual([params['max_new_tokens'], params['temperature'], params['top_p'], params['ignore_eos']], [6, 0, null, true]);
    assert.ok(Number.isInteger(params['seed']));
    assert.deepEqual(params['interventions'], { ban: [{ layer: 'all', expert: 3 }] });
  });

  it('a JSONL export of a run that grows while it is written agrees with itself: rows stop where its header does', async () => {
    const stored = (await (await fetch(`${server.url}/api/runs/${runA}`, { headers: auth() })).json()) as { run: { id: string; modelId: string; params: GenerateParams }; events: RunEvent[] };
    const store = new RunStore(mkdtempSync(join(tmpdir(), 'moe-lab-data-')));
    try {
      const id = randomUUID();
      store.create({ id, clientRunId: null, modelId: stored.run.modelId, params: stored.run.params });
      const half = stored.events.findIndex((e) => e.t === 'routing' && e.index === 8);
      store.appendEvents(id, 0, stored.events.slice(0, half));
      const chunks: string[] = [];
      for await (const c of exportStream(traceSource({ store, runs: { eventsFrom: () => null } }, [id]), 'jsonl').chunks) {
        // The header is out (every run read once): the run goes on before its rows are read.
        if (chunks.length === 0) store.appendEvents(id, half, stored.events.slice(half));
        chunks.push(String(c));
      }
      const file = join(mkdtempSync(join(tmpdir(), 'moe-lab-trace-')), 'live.jsonl');
      writeFileSync(file, chunks.join(''));
      // Reading it back checks every row against the header's runs.
      const [trace] = await loadTraces(file);
      const header = (JSON.parse(chunks[0]!) as { moe_lab_trace: { runs: { num_tokens: number }[] } }).moe_lab_trace.runs[0]!;
      assert.equal(trace!.tokens.length, header.num_tokens);
      assert.ok(header.num_tokens < 17, `the run as the header saw it, not as it ended (${header.num_tokens} tokens)`);
    } finally {
      store.close();
    }
  });

  it('analysis over runs reports per-layer load with the random baselines', async () => {
    const res = await fetch(`${server.url}/api/analysis?runs=${runA},${runB}`, { headers: auth() });
    assert.equal(res.status, 200);
    const report = (await res.json()) as { runs: number; layers: number[] };
    assert.equal(report.runs, 2);
    assert.deepEqual(report.layers, [0, 1, 2, 3]);
    assert.equal((await fetch(`${server.url}/api/runs/${runA}/trace?format=xml`, { headers: auth() })).status, 400);
  });
});
