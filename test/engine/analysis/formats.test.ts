/**
 * Round trips through every export format: the rows read back are the rows written, value for
 * value. Parquet is read by DuckDB, an independent reader, as well as by our own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { AnalysisErrorCode } from '../../../engine/analysis/errors.ts';
import { traceFromEvents } from '../../../engine/analysis/events.ts';
import { CsvParser, csvSidecarPath, readCsv, writeCsv } from '../../../engine/analysis/formats/csv.ts';
import { arraySource, exportSidecar, exportStream, loadTraces, readTraceFile, writeTraceFile, TRACE_FORMATS } from '../../../engine/analysis/formats/index.ts';
import { readJsonl, writeJsonl } from '../../../engine/analysis/formats/jsonl.ts';
import { parquetBytes, ParquetTraceStream, readParquet, writeParquet } from '../../../engine/analysis/formats/parquet.ts';
import { importVllm } from '../../../engine/analysis/import.ts';
import { BASE_COLUMNS, columnList, traceRows, tracesFromRows, type TraceColumns } from '../../../engine/analysis/rows.ts';
import type { RunTrace } from '../../../engine/analysis/trace.ts';
import { Engine } from '../../../engine/engine.ts';
import type { GenerationEvent } from '../../../engine/generate/types.ts';
import { seededRandom } from '../../../engine/generate/sampling.ts';
import { testCacheDir } from '../../helpers/cache.ts';
import { makeCheckpoint } from '../../helpers/checkpoints.ts';
import { randomTrace } from './synthetic.ts';

/** Token texts a naive CSV or JSON writer gets wrong. */
const NASTY = ['a,b', 'say "hi"', 'line\nbreak', 'crlf\r\nend', '', null, 'tab\there', 'ünïcödé 🎉', ' lead', '"', ',', '\\', '""', 'x"\n,"y'];

/** Rows as plain arrays, column by column, for deep equality. */
function plain(c: TraceColumns): Record<string, unknown[]> {
  return Object.fromEntries(columnList(c).map(({ spec, values }) => [spec.name, Array.from(values as ArrayLike<unknown>)]));
}

async function engineTrace(): Promise<RunTrace> {
  const engine = await Engine.load(makeCheckpoint({ tokenizer: true }), { cacheDir: testCacheDir() });
  try {
    const events: GenerationEvent[] = [];
    for await (const ev of engine.generate({ prompt: 'Once, "quoted"\nand more', maxNewTokens: 12, ignoreEos: true })) events.push(ev);
    return traceFromEvents({ runId: 'engine-run', model: engine.info, meta: { prompt: 'Once', params: { max_new_tokens: 12 }, fields: { domain: 'prose', split: 'a,b "c"' } } }, events);
  } finally {
    await engine.dispose();
  }
}

function nastyTrace(): RunTrace {
  return randomTrace(seededRandom(5), {
    runId: 'nasty, "run"\nid',
    tokens: NASTY.length,
    layers: [1, 3],
    E: 8,
    k: 2,
    full: true,
    tokenText: (i) => NASTY[i]!,
    meta: { fields: { domain: 'code' }, prompt: 'p' },
  });
}

/** An imported run: ids only, and two prefix-cached positions without routing. */
function importedTrace(): RunTrace {
  const row = (a: number, b: number) => [[a, b], [b, a]];
  return importVllm(
    { model: 'm', prompt_token_ids: [5, 6, 7], prompt_routed_experts: [row(-1, -1), row(-1, -1), row(1, 2)], choices: [{ token_ids: [8, 9], routed_experts: [row(3, 4), row(5, 6)] }] },
    { runId: 'imported', numExperts: 8 },
  )[0]!;
}

describe('trace files round trip', () => {
  let traces: RunTrace[];
  let dir: string;
  let db: DuckDBInstance;
  let duck: DuckDBConnection;
  before(async () => {
    traces = [await engineTrace(), nastyTrace(), importedTrace()];
    dir = mkdtempSync(join(tmpdir(), 'moe-lab-trace-'));
    db = await DuckDBInstance.create(':memory:');
    duck = await db.connect();
  });
  after(() => {
    duck.closeSync();
    db.closeSync();
  });

  it('the fixture runs cover what the formats must carry', () => {
    const rows = traceRows(traces);
    assert.ok(rows.gate_weight.some((w) => w === null) && rows.gate_weight.some((w) => w !== null), 'null and non-null gate weights');
    assert.ok(rows.token_text.includes('') && rows.token_text.includes(null), 'empty and null token text');
    assert.ok(rows.fields.get('split')!.includes(null), 'a field some runs lack');
    assert.equal(traces[2]!.routing.length, 3, 'prefix-cached positions have no routing');
  });

  it('DuckDB reads our Parquet with identical values, types and row count', async () => {
    const path = join(dir, 'all.parquet');
    writeParquet(path, traces, { rowGroupRows: 100 }); // several row groups
    const expected = plain(traceRows(traces));
    const n = expected['run_id']!.length;
    const res = await duck.runAndReadAll(`SELECT * FROM read_parquet('${path}', file_row_number = true) ORDER BY file_row_number`);
    const got = res.getColumnsObjectJS();
    assert.equal(res.currentRowCount, n);
    for (const [name, values] of Object.entries(expected)) assert.deepEqual(got[name], values, `column ${name}`);
    const types = (await duck.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${path}')`)).getRowObjectsJS();
    const typeOf = Object.fromEntries(types.map((t) => [String(t['column_name']), String(t['column_type'])]));
    for (const c of BASE_COLUMNS) assert.equal(typeOf[c.name], { string: 'VARCHAR', int32: 'INTEGER', float32: 'FLOAT' }[c.type], c.name);
    const required = (await duck.runAndReadAll(`SELECT name, repetition_type FROM parquet_schema('${path}')`)).getRowObjectsJS();
    for (const c of BASE_COLUMNS) assert.equal(required.find((r) => r['name'] === c.name)?.['repetition_type'], c.nullable ? 'OPTIONAL' : 'REQUIRED', c.name);
  });

  it('the Parquet key-value metadata holds every run, readable by DuckDB', async () => {
    const path = join(dir, 'meta.parquet');
    writeParquet(path, traces);
    const kv = (await duck.runAndReadAll(`SELECT decode(key) AS key, decode(value) AS value FROM parquet_kv_metadata('${path}')`)).getRowObjectsJS();
    const doc = JSON.parse(String(kv.find((r) => r['key'] === 'moe_lab.trace')!['value'])) as { runs: { run_id: string; num_tokens: number; fields: Record<string, string> }[]; columns: string[] };
    assert.deepEqual(doc.runs.map((r) => r.run_id), traces.map((t) => t.runId));
    assert.deepEqual(doc.runs.map((r) => r.num_tokens), traces.map((t) => t.tokens.length));
    assert.equal(doc.runs[0]!.fields['split'], 'a,b "c"');
    assert.deepEqual(doc.columns.slice(-2), ['domain', 'split']);
  });

  for (const format of TRACE_FORMATS) {
    it(`${format}: rows read back are identical, and become the same runs again`, async () => {
      const path = join(dir, `rt.${format}`);
      writeTraceFile(path, traces);
      const file = await readTraceFile(path);
      assert.deepEqual(plain(file.columns), plain(traceRows(traces)));
      const back = await loadTraces(path);
      assert.deepEqual(back.map((t) => t.runId), traces.map((t) => t.runId));
      assert.deepEqual(plain(traceRows(back)), plain(traceRows(traces)));
      for (const [i, t] of back.entries()) {
        const orig = traces[i]!;
        assert.equal(t.tokens.length, orig.tokens.length);
        assert.deepEqual(t.moeLayers, orig.moeLayers);
        assert.equal(t.k, orig.k);
        assert.deepEqual(t.meta.fields, orig.meta.fields);
        assert.deepEqual(t.meta.params, orig.meta.params);
        assert.deepEqual(t.routing.map((r) => r.index), orig.routing.map((r) => r.index));
      }
    });
  }

  it('CSV quoting keeps commas, quotes and line breaks, and tells "" from null', async () => {
    const path = join(dir, 'q.csv');
    writeCsv(path, [nastyTrace()]);
    const text = readFileSync(path, 'utf8');
    assert.ok(text.includes('"say ""hi"""'), 'inner quotes doubled');
    assert.ok(text.includes('"line\nbreak"'), 'line break inside quotes');
    const f = await readCsv(path);
    const texts = new Set(f.columns.token_text);
    for (const s of NASTY) assert.ok(texts.has(s), `token text ${JSON.stringify(s)} survived`);
    assert.ok(JSON.parse(readFileSync(csvSidecarPath(path), 'utf8')).runs[0].run_id === 'nasty, "run"\nid');
  });

  it('the CSV parser gives the same records however the input is chunked', () => {
    const text = 'a,b\n"x,""y""\r\nz",\n"",3\r\n';
    const parse = (chunks: string[]) => {
      const records: { text: string; quoted: boolean }[][] = [];
      const p = new CsvParser((r) => records.push(r));
      for (const c of chunks) p.push(c);
      p.end();
      return records;
    };
    const whole = parse([text]);
    assert.deepEqual(whole, [
      [{ text: 'a', quoted: false }, { text: 'b', quoted: false }],
      [{ text: 'x,"y"\r\nz', quoted: true }, { text: '', quoted: false }],
      [{ text: '', quoted: true }, { text: '3', quoted: false }],
    ]);
    assert.deepEqual(parse([...text]), whole, 'one character per chunk');
  });

  it('streamed export bodies are the files, their sidecar included', async () => {
    for (const format of TRACE_FORMATS) {
      const body = exportStream(arraySource(traces), format);
      const parts: Buffer[] = [];
      for await (const c of body.chunks) parts.push(typeof c === 'string' ? Buffer.from(c) : Buffer.from(c));
      const path = join(dir, `body${body.extension}`);
      writeFileSync(path, Buffer.concat(parts));
      if (format === 'csv') writeFileSync(csvSidecarPath(path), await exportSidecar(arraySource(traces)));
      const back = await readTraceFile(path);
      assert.deepEqual(plain(back.columns), plain(traceRows(traces)), format);
      assert.deepEqual(back.document.runs.map((r) => r.run_id), traces.map((t) => t.runId), format);
    }
    const inMemory = await readParquet(parquetBytes(traces));
    assert.equal(inMemory.columns.length, traceRows(traces).length);
  });

  it('a streamed export reads one run at a time and hands the event loop back between runs', async () => {
    for (const format of TRACE_FORMATS) {
      // Turns of the event loop taken by other work while the export runs.
      let turns = 0;
      let ticking = true;
      const tick = () => {
        turns++;
        if (ticking) setImmediate(tick);
      };
      setImmediate(tick);
      const loads: { run: number; turn: number }[] = [];
      const source = { ...arraySource(traces), load: (i: number) => (loads.push({ run: i, turn: turns }), traces[i] ?? null) };
      for await (const c of exportStream(source, format).chunks) void c;
      ticking = false;
      const order = traces.map((_, i) => i);
      // JSONL reads the runs twice: once for its header (every run's metadata), once for the rows.
      assert.deepEqual(loads.map((l) => l.run), format === 'jsonl' ? [...order, ...order] : order, format);
      for (let i = 1; i < loads.length; i++) assert.ok(loads[i]!.turn > loads[i - 1]!.turn, `${format}: other work ran between loads ${i - 1} and ${i}`);
    }
  });

  it('a streamed export stops reading runs once its signal aborts (the client went away)', async () => {
    for (const format of TRACE_FORMATS) {
      const stop = new AbortController();
      const loads: number[] = [];
      const source = { ...arraySource(traces), load: (i: number) => (loads.push(i), i === 0 && stop.abort(), traces[i] ?? null) };
      for await (const c of exportStream(source, format, stop.signal).chunks) void c;
      assert.deepEqual(loads, [0], format);
    }
  });

  it('a Parquet stream hands over each row group as it is encoded, and the pieces are the file', async () => {
    const s = new ParquetTraceStream(arraySource(traces).fields, 40);
    const pieces: Uint8Array[] = [];
    for (const t of traces) {
      s.add([t]);
      pieces.push(s.take());
    }
    pieces.push(s.finish());
    assert.ok(pieces.filter((p) => p.length > 0).length >= 3, `pieces ${pieces.map((p) => p.length)}`);
    const file = Buffer.concat(pieces);
    const back = await readParquet(new Uint8Array(file));
    assert.deepEqual(plain(back.columns), plain(traceRows(traces)));
    assert.deepEqual(back.document.runs.map((r) => r.run_id), traces.map((t) => t.runId));
  });

  it('a JSONL file without its header line (rows exported by another tool) still reads, its runs inferred from the rows', async () => {
    const path = join(dir, 'headless.jsonl');
    writeJsonl(path, traces);
    writeFileSync(path, readFileSync(path, 'utf8').split('\n').slice(1).join('\n'));
    const back = await readJsonl(path);
    assert.deepEqual(plain(back.columns), plain(traceRows(traces)));
    assert.deepEqual(back.document.runs, []);
    const runs = tracesFromRows(back.columns, back.document.runs);
    assert.deepEqual(runs.map((t) => t.runId), traces.map((t) => t.runId));
    assert.deepEqual(runs.map((t) => t.routing.length), traces.map((t) => t.routing.length));
  });

  it('damaged or foreign files fail with TRACE_BAD_FILE', async () => {
    const junk = join(dir, 'junk.parquet');
    writeFileSync(junk, 'not parquet at all');
    await assert.rejects(readParquet(junk), { code: AnalysisErrorCode.BAD_FILE });
    await assert.rejects(readParquet(join(dir, 'missing.parquet')), { code: AnalysisErrorCode.BAD_FILE });
    const jsonl = join(dir, 'bad.jsonl');
    writeJsonl(jsonl, [nastyTrace()]);
    const lines = readFileSync(jsonl, 'utf8').split('\n');
    writeFileSync(jsonl, [lines[0], lines[1]!.replace('"expert":', '"expert":"seven","x":').replace(/,"x":\d+/, '')].join('\n'));
    await assert.rejects(readJsonl(jsonl), { code: AnalysisErrorCode.BAD_FILE });
    await assert.rejects(readJsonl({ text: '{"rows": 1}\n' }), { code: AnalysisErrorCode.BAD_FILE });
    const csv = join(dir, 'cols.csv');
    writeFileSync(csv, 'run_id,model_id\n"a","b"\n');
    await assert.rejects(readCsv(csv), { code: AnalysisErrorCode.BAD_FILE });
  });
});
