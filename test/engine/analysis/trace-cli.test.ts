/**
 * `moe-lab trace` and `moe-lab analyze` as processes: a trace killed at arbitrary moments and
 * rerun ends with exactly the rows of an uninterrupted trace; and trace → analyze --by domain
 * end to end.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { AnalysisErrorCode } from '../../../engine/analysis/errors.ts';
import { readTraceFile } from '../../../engine/analysis/formats/index.ts';
import { writeParquet } from '../../../engine/analysis/formats/parquet.ts';
import type { AnalysisReport } from '../../../engine/analysis/report.ts';
import { tracesFromRows } from '../../../engine/analysis/rows.ts';
import { EngineErrorCode } from '../../../engine/errors.ts';
import { runAnalyze } from '../../../engine/cli/analyze.ts';
import { BUILTIN_MODEL, builtinModelAvailable } from '../../../engine/cli/main.ts';
import { runTrace } from '../../../engine/cli/trace.ts';
import { testCacheDir } from '../../helpers/cache.ts';
import { capture } from '../../helpers/capture.ts';
import { makeCheckpoint } from '../../helpers/checkpoints.ts';
import { REPO_ROOT } from '../../helpers/fixtures.ts';

// In-process runs (the reference trace) compile graphs into the tests' cache, as the children do.
process.env['MOE_LAB_CACHE'] ??= testCacheDir();

const ENTRY = join(REPO_ROOT, 'test', 'engine', 'analysis', 'cli-entry.ts');

function cli(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { cwd: REPO_ROOT, env: { ...process.env, MOE_LAB_CACHE: testCacheDir() } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

function parts(out: string): number {
  const dir = `${out}.parts`;
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.parquet') && !n.startsWith('.')).length : 0;
}

const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

/** Resolves once `pred` holds, polling every few milliseconds. */
async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 3));
  }
}

describe('trace resumes after being killed', () => {
  let dir: string;
  let model: string;
  let db: DuckDBInstance;
  let duck: DuckDBConnection;
  const PROMPTS = 10;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moe-lab-cli-'));
    model = makeCheckpoint({ tokenizer: true });
    const lines = Array.from({ length: PROMPTS }, (_, i) => JSON.stringify({ prompt: `Prompt number ${i}: ${'lorem ipsum, "dolor" '.repeat(2 + (i % 3))}`, domain: ['code', 'prose', 'math'][i % 3] }));
    writeFileSync(join(dir, 'prompts.jsonl'), lines.join('\n') + '\n');
    db = await DuckDBInstance.create(':memory:');
    duck = await db.connect();
  });
  after(() => {
    duck.closeSync();
    db.closeSync();
  });

  const traceArgs = (out: string) => ['trace', '--model', model, '--prompts', join(dir, 'prompts.jsonl'), '--out', out, '--max-new-tokens', '40', '--ignore-eos'];
  const count = async (sql: string) => Number((await duck.runAndReadAll(sql)).getRows()[0]![0]);

  it('killed twice (SIGKILL, then SIGINT) and rerun, it has exactly the rows of an uninterrupted trace', async () => {
    const ref = join(dir, 'ref.parquet');
    await runTrace(traceArgs(ref).slice(1), BUILTIN_MODEL, sink());

    const out = join(dir, 'out.parquet');
    // 1: SIGKILL as soon as two runs are committed: no chance to clean up anything.
    const first = cli(traceArgs(out));
    await until(() => parts(out) >= 2, 60_000, 'two committed runs');
    first.child.kill('SIGKILL');
    const r1 = await first.done;
    assert.equal(r1.signal, 'SIGKILL');
    const afterKill = parts(out);
    assert.ok(afterKill >= 2 && afterKill < PROMPTS, `killed mid-trace (${afterKill} of ${PROMPTS} runs committed)`);
    assert.ok(!existsSync(out), 'nothing merged yet');

    // 2: SIGINT a few runs later, mid-generation: the current run is dropped, the rest merged.
    const second = cli(traceArgs(out));
    await until(() => parts(out) >= afterKill + 2, 60_000, 'two more runs');
    second.child.kill('SIGINT');
    const r2 = await second.done;
    assert.match(r2.stderr, /resuming: \d+ of 10 prompts already traced/);
    if (r2.code === 130) {
      assert.match(r2.stderr, /interrupted: \d+ prompt\(s\) left/);
      assert.ok(existsSync(out) && !existsSync(`${out}.parts`), 'finished runs merged into OUT');
    } else assert.equal(r2.code, 0, `the interrupt came after the last run: a normal finish\n${r2.stderr}`);

    // 3: run to the end.
    const third = await cli(traceArgs(out)).done;
    assert.equal(third.code, 0, third.stderr);
    assert.ok(!existsSync(`${out}.parts`) && !existsSync(`${out}.lock`));

    const n = await count(`SELECT count(*) FROM read_parquet('${ref}')`);
    assert.ok(n > 0);
    assert.equal(await count(`SELECT count(*) FROM read_parquet('${out}')`), n, 'same row count');
    assert.equal(await count(`SELECT count(*) FROM (SELECT run_id, token_index, layer, rank FROM read_parquet('${out}') GROUP BY ALL HAVING count(*) > 1)`), 0, 'no duplicate rows');
    assert.equal(await count(`SELECT count(*) FROM (SELECT * FROM read_parquet('${out}') EXCEPT ALL SELECT * FROM read_parquet('${ref}'))`), 0, 'no row the reference lacks');
    assert.equal(await count(`SELECT count(DISTINCT run_id) FROM read_parquet('${out}')`), PROMPTS);
  });

  it('a finished trace rerun with other parameters is refused with TRACE_RESUME_MISMATCH', async () => {
    const args = traceArgs(join(dir, 'ref.parquet')).slice(1);
    await assert.rejects(runTrace(args.map((a) => (a === '40' ? '7' : a)), BUILTIN_MODEL, sink()), { code: AnalysisErrorCode.RESUME_MISMATCH });
  });
});

describe('trace output that is not whole', () => {
  let dir: string;
  let model: string;
  let db: DuckDBInstance;
  let duck: DuckDBConnection;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moe-lab-cli-'));
    model = makeCheckpoint({ tokenizer: true });
    const lines = ['one, two', 'three "four"', 'five\nsix', 'seven eight'].map((prompt, i) => JSON.stringify({ id: `p${i}`, prompt }));
    writeFileSync(join(dir, 'three.jsonl'), lines.slice(0, 3).join('\n') + '\n');
    writeFileSync(join(dir, 'four.jsonl'), lines.join('\n') + '\n');
    db = await DuckDBInstance.create(':memory:');
    duck = await db.connect();
  });
  after(() => {
    duck.closeSync();
    db.closeSync();
  });
  const args = (prompts: string, out: string, ...more: string[]) => ['--model', model, '--prompts', join(dir, prompts), '--out', join(dir, out), '--max-new-tokens', '6', ...more];
  const count = async (sql: string) => Number((await duck.runAndReadAll(sql)).getRows()[0]![0]);

  it("a CSV whose sidecar landed without its rows (killed between the two renames) gets the run's rows from its part", async () => {
    await runTrace(args('three.jsonl', 'out.csv'), BUILTIN_MODEL, sink());
    await runTrace(args('four.jsonl', 'full.csv'), BUILTIN_MODEL, sink());
    // The state a kill during the merge of a fourth run leaves: the new sidecar, the old CSV, the run's part.
    copyFileSync(join(dir, 'full.csv.meta.json'), join(dir, 'out.csv.meta.json'));
    const full = await readTraceFile(join(dir, 'full.csv'));
    mkdirSync(join(dir, 'out.csv.parts'));
    writeParquet(join(dir, 'out.csv.parts', 'p3.parquet'), tracesFromRows(full.columns, full.document.runs).filter((t) => t.runId === 'p3'));

    const err = capture();
    await runTrace(args('four.jsonl', 'out.csv'), BUILTIN_MODEL, err.stream);
    assert.match(err.text(), /resuming: 4 of 4 prompts already traced/);
    assert.doesNotMatch(err.text(), /warning/);
    const rows = (f: string, run: string) => count(`SELECT count(*) FROM read_csv('${join(dir, f)}', header = true) WHERE run_id = '${run}'`);
    assert.ok((await rows('full.csv', 'p3')) > 0);
    assert.equal(await rows('out.csv', 'p3'), await rows('full.csv', 'p3'));
    assert.equal(await count(`SELECT count(*) FROM read_csv('${join(dir, 'out.csv')}', header = true)`), await count(`SELECT count(*) FROM read_csv('${join(dir, 'full.csv')}', header = true)`));
  });

  it('an output without trace metadata (copied by another tool) is refused, not traced again and thrown away', async () => {
    await runTrace(args('three.jsonl', 'ref.parquet'), BUILTIN_MODEL, sink());
    await duck.run(`COPY (SELECT * FROM read_parquet('${join(dir, 'ref.parquet')}')) TO '${join(dir, 'copy.parquet')}' (FORMAT parquet)`);
    await assert.rejects(runTrace(args('three.jsonl', 'copy.parquet'), BUILTIN_MODEL, sink()), (e: Error & { code?: string }) => {
      assert.equal(e.code, AnalysisErrorCode.RESUME_MISMATCH);
      assert.match(e.message, /no moe_lab\.trace metadata/);
      return true;
    });
    await runTrace(args('three.jsonl', 'bare.csv'), BUILTIN_MODEL, sink());
    rmSync(join(dir, 'bare.csv.meta.json'));
    await assert.rejects(runTrace(args('three.jsonl', 'bare.csv'), BUILTIN_MODEL, sink()), { code: AnalysisErrorCode.RESUME_MISMATCH });
    await runTrace(args('three.jsonl', 'bare.jsonl'), BUILTIN_MODEL, sink());
    writeFileSync(join(dir, 'bare.jsonl'), readFileSync(join(dir, 'bare.jsonl'), 'utf8').split('\n').slice(1).join('\n'));
    await assert.rejects(runTrace(args('three.jsonl', 'bare.jsonl'), BUILTIN_MODEL, sink()), { code: AnalysisErrorCode.RESUME_MISMATCH });
    assert.ok(['copy.parquet', 'bare.csv', 'bare.jsonl'].every((f) => !existsSync(join(dir, `${f}.parts`))), 'nothing traced');
  });

  it('refuses a prompt longer than the context before the first prompt runs', async () => {
    writeFileSync(join(dir, 'long.jsonl'), [JSON.stringify({ prompt_ids: [1, 2, 3] }), JSON.stringify({ prompt_ids: Array.from({ length: 5000 }, (_, i) => 1 + (i % 50)) })].join('\n'));
    await assert.rejects(runTrace(args('long.jsonl', 'long.parquet'), BUILTIN_MODEL, sink()), (e: Error & { code?: string }) => {
      assert.equal(e.code, EngineErrorCode.PROMPT_TOO_LONG);
      assert.match(e.message, /long\.jsonl:2: the prompt has 5000 tokens/);
      return true;
    });
    assert.ok(!existsSync(join(dir, 'long.parquet.parts')) && !existsSync(join(dir, 'long.parquet')), 'no prompt ran');
  });

  it('traces quantized weights with --quant, labelled in model_hash', async () => {
    await runTrace(args('three.jsonl', 'int8.parquet', '--quant', 'int8'), BUILTIN_MODEL, sink());
    const hashes = (await duck.runAndReadAll(`SELECT DISTINCT model_hash FROM read_parquet('${join(dir, 'int8.parquet')}')`)).getRows().map((r) => String(r[0]));
    assert.equal(hashes.length, 1);
    assert.match(hashes[0]!, /^[0-9a-f]{64}:int8$/);
    // A float32 trace cannot continue it.
    await assert.rejects(runTrace(args('four.jsonl', 'int8.parquet'), BUILTIN_MODEL, sink()), { code: AnalysisErrorCode.RESUME_MISMATCH });
  });

  it('analyze writes FILE.analysis.json, and refuses to write its report over the trace or its sidecar', async () => {
    await runAnalyze([join(dir, 'ref.parquet')], sink(), sink());
    assert.ok(existsSync(join(dir, 'ref.parquet.analysis.json')));
    const before = [readFileSync(join(dir, 'ref.parquet')), readFileSync(join(dir, 'out.csv.meta.json'))];
    for (const [file, json] of [['ref.parquet', 'ref.parquet'], ['out.csv', 'out.csv.meta.json'], ['out.csv', 'out.csv']]) {
      await assert.rejects(runAnalyze([join(dir, file!), '--json', join(dir, '.', json!)], sink(), sink()), { code: AnalysisErrorCode.BAD_INPUT });
    }
    assert.deepEqual([readFileSync(join(dir, 'ref.parquet')), readFileSync(join(dir, 'out.csv.meta.json'))], before);
  });

  it('says so, even with --quiet, when the output holds runs the prompt file no longer lists', async () => {
    await runTrace(args('four.jsonl', 'edited.parquet'), BUILTIN_MODEL, sink());
    const err = capture();
    await runTrace(args('three.jsonl', 'edited.parquet', '--quiet'), BUILTIN_MODEL, err.stream);
    assert.match(err.text(), /^warning: .*edited\.parquet also holds 1 run\(s\) that are not in .*three\.jsonl \(p3\); they are kept$/m);
  });
});

describe('the command line', () => {
  const bin = (args: string[]) => spawn(process.execPath, [join(REPO_ROOT, 'server', 'bin.mjs'), ...args], { cwd: REPO_ROOT, env: { ...process.env, MOE_LAB_CACHE: testCacheDir() } });

  it('stops quietly when its reader stops early (generate --json | head)', async () => {
    // 250 prompt positions: more lines than a pipe holds, so writes go on after the reader left.
    const ids = Array.from({ length: 250 }, (_, i) => 3 + (i % 90)).join(',');
    const child = bin(['generate', '--model', makeCheckpoint({ tokenizer: true }), '--prompt-ids', ids, '--max-new-tokens', '4', '--json']);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdout!.once('data', () => child.stdout!.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /EPIPE|at /);
  });

  it('a bad option is reported as such, not as a fault of the prompt file\'s first line; a seed must be a 32-bit integer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-lab-cli-'));
    writeFileSync(join(dir, 'p.jsonl'), '{"prompt_ids": [1, 2, 3]}\n');
    const trace = (...more: string[]) => runTrace(['--model', makeCheckpoint({ tokenizer: true }), '--prompts', join(dir, 'p.jsonl'), '--out', join(dir, 't.parquet'), '--max-new-tokens', '2', ...more], BUILTIN_MODEL, sink());
    for (const [flags, code] of [[['--seed', '1.5'], EngineErrorCode.BAD_SAMPLING], [['--seed', '1e30'], EngineErrorCode.BAD_SAMPLING], [['--temperature=-1'], EngineErrorCode.BAD_SAMPLING], [['--ban', '9:0'], EngineErrorCode.BAD_INTERVENTION]] as const) {
      await assert.rejects(trace(...flags), (e: Error & { code?: string }) => {
        assert.equal(e.code, code, flags.join(' '));
        assert.doesNotMatch(e.message, /p\.jsonl/, flags.join(' '));
        return true;
      });
    }
  });

  it('an output in a folder that cannot be made is TRACE_BAD_INPUT naming the output', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-lab-cli-'));
    writeFileSync(join(dir, 'p.jsonl'), '{"prompt_ids": [1, 2, 3]}\n');
    const out = join(dir, 'p.jsonl', 'x.parquet'); // under a file
    await assert.rejects(runTrace(['--model', makeCheckpoint({ tokenizer: true }), '--prompts', join(dir, 'p.jsonl'), '--out', out], BUILTIN_MODEL, sink()), (e: Error & { code?: string }) => {
      assert.equal(e.code, AnalysisErrorCode.BAD_INPUT);
      assert.match(e.message, new RegExp(`^cannot write ${out.replace(/[.]/g, '\\.')}: E[A-Z]+ \\(is .* a writable folder\\?\\)$`));
      return true;
    });
  });

  it("names the file it could not write and the system's code, not a temporary file", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-lab-cli-'));
    const trace = join(dir, 't.parquet');
    writeFileSync(join(dir, 'p.jsonl'), '{"prompt_ids": [1, 2, 3]}\n');
    await runTrace(['--model', makeCheckpoint({ tokenizer: true }), '--prompts', join(dir, 'p.jsonl'), '--out', trace, '--max-new-tokens', '2'], BUILTIN_MODEL, sink());
    const child = bin(['analyze', trace, '--json', join(dir, 'missing', 'r.json')]);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(code, 2);
    assert.equal(stderr.trim().split('\n').at(-1), `error [ENOENT]: cannot write ${join(dir, 'missing', 'r.json')}: ENOENT`);
  });
});

describe('trace then analyze --by domain, end to end', () => {
  const trained = builtinModelAvailable();

  it(`${trained ? 'the built-in model' : 'a test model (the built-in model is not trained yet)'}: per-domain report${trained ? ' with specialization above the random baseline' : ''}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-lab-e2e-'));
    const model = trained ? BUILTIN_MODEL : makeCheckpoint({ tokenizer: true });
    t.diagnostic(`model: ${model}`);
    // Three domains, three prompts each.
    const prompts = {
      code: ['def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)', 'for (let i = 0; i < 10; i++) { sum += a[i]; }', 'import os\nprint(os.listdir("."))'],
      prose: ['The old lighthouse keeper watched the storm roll in over the bay.', 'She folded the letter twice and put it in her coat pocket.', 'In spring the meadow filled with the sound of bees.'],
      math: ['Let x = 3 and y = 4. Then x^2 + y^2 = 25.', 'The derivative of sin(x) is cos(x), and of x^3 is 3x^2.', 'If 2a + 6 = 14, then a = 4.'],
    };
    const lines = Object.entries(prompts).flatMap(([domain, ps]) => ps.map((prompt) => JSON.stringify({ prompt, domain })));
    writeFileSync(join(dir, 'prompts.jsonl'), lines.join('\n'));
    const out = join(dir, 'trace.parquet');
    const traced = await cli(['trace', '--model', model, '--prompts', join(dir, 'prompts.jsonl'), '--out', out, '--max-new-tokens', '16']).done;
    assert.equal(traced.code, 0, traced.stderr);
    assert.match(traced.stderr, /9\/9 prompts .* tok\/s/);

    const json = join(dir, 'report.json');
    const analyzed = await cli(['analyze', out, '--by', 'domain', '--json', json, '--devices', '2']).done;
    assert.equal(analyzed.code, 0, analyzed.stderr);
    assert.match(analyzed.stdout, /specialization by domain/);
    assert.match(analyzed.stdout, /same top-1/);
    const report = JSON.parse(readFileSync(json, 'utf8')) as AnalysisReport;
    assert.equal(report.runs, 9);
    assert.deepEqual(report.by!.groups.map((g) => g.value).sort(), ['code', 'math', 'prose']);
    assert.ok(report.by!.groups.every((g) => g.runs === 3 && g.positions > 0));
    for (const l of report.perLayer) {
      assert.ok(l.consecutive.pairs > 0 && l.entropy !== null && l.topKMass !== null && l.eplb !== null);
      assert.equal(l.load.counts.reduce((a, b) => a + b, 0), report.positions * report.k);
    }
    const baseline = report.baselines.domainShare;
    for (const g of report.by!.groups) t.diagnostic(`${g.value}: max share ${(g.maxShare * 100).toFixed(1)}% vs random ${(baseline * 100).toFixed(1)}%`);
    if (trained) {
      // Specialized experts: at the last layer, each domain's busiest expert takes at least twice the
      // uniform share k/E, and code and prose are led by different experts.
      const last = (g: NonNullable<typeof report.by>["groups"][number]) => g.layers[g.layers.length - 1]!;
      for (const g of report.by!.groups) assert.ok(last(g).maxShare > 2 * baseline, `${g.value}: last-layer max share ${last(g).maxShare} vs k/E = ${baseline}`);
      const lead = (v: string) => last(report.by!.groups.find((g) => g.value === v)!).top[0]!.expert;
      assert.notEqual(lead('code'), lead('prose'));
    }

    await assert.rejects(runAnalyze([out, '--by', 'colour', '--json', join(dir, 'x.json')], sink(), sink()), (e: Error & { code?: string }) => {
      assert.equal(e.code, AnalysisErrorCode.UNKNOWN_FIELD);
      assert.match(e.message, /domain/);
      return true;
    });
  });
});
