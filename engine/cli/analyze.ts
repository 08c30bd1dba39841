/**
 * `moe-lab analyze`: the standard routing metrics of a trace file, as a readable report on stdout
 * and as JSON.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AnalysisError, AnalysisErrorCode } from '../analysis/errors.ts';
import { atomicWriteFile } from '../analysis/formats/atomic.ts';
import { csvSidecarPath } from '../analysis/formats/csv.ts';
import { loadTraces } from '../analysis/formats/index.ts';
import { analyzeTraces, formatReport, type AnalysisReport } from '../analysis/report.ts';

export const ANALYZE_USAGE = `moe-lab analyze FILE.parquet|.jsonl|.csv [--by FIELD] [--json OUT.json] [--devices D] [--top N]

  Per MoE layer: expert load (CV, max/mean), router entropy and top-k mass, consecutive-token
  agreement (same top-1, any overlap) and co-activation against their random baselines, and
  cross-layer transitions. --by groups positions by a run field (e.g. domain), phase or run_id
  and shows the experts that dominate each group. --devices adds EPLB balancedness for E/D
  experts per device. The JSON goes to OUT.json (default: FILE.analysis.json, e.g.
  traces.parquet.analysis.json), never onto the trace or its sidecar.`;

export interface AnalyzeArgs {
  readonly file: string;
  readonly by: string | undefined;
  readonly json: string;
  readonly devices: number | undefined;
  readonly top: number | undefined;
}

function positiveInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(Number.isInteger(n) && n >= 1)) throw new AnalysisError(AnalysisErrorCode.BAD_INPUT, `--${name} must be a positive integer, got '${v}'`);
  return n;
}

export function parseAnalyzeArgs(argv: string[]): AnalyzeArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { by: { type: 'string' }, json: { type: 'string' }, devices: { type: 'string' }, top: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new AnalysisError(AnalysisErrorCode.BAD_INPUT, 'give exactly one trace file');
  return {
    file,
    by: values.by,
    // The whole name, extension included: traces of one name in two formats get two reports.
    json: values.json ?? `${file}.analysis.json`,
    devices: positiveInt(values.devices, 'devices'),
    top: positiveInt(values.top, 'top'),
  };
}

export async function runAnalyze(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<AnalysisReport> {
  const args = parseAnalyzeArgs(argv);
  const json = resolve(args.json);
  if (json === resolve(args.file) || json === resolve(csvSidecarPath(args.file))) {
    throw new AnalysisError(AnalysisErrorCode.BAD_INPUT, `--json ${args.json} would overwrite the trace being analysed; give another path`);
  }
  const traces = await loadTraces(args.file);
  if (traces.length === 0) throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${args.file} holds no runs`);
  const report = analyzeTraces(traces, {
    ...(args.by !== undefined ? { by: args.by } : {}),
    ...(args.devices !== undefined ? { devices: args.devices } : {}),
    ...(args.top !== undefined ? { top: args.top } : {}),
  });
  out.write(formatReport(report));
  atomicWriteFile(args.json, JSON.stringify(report, null, 2) + '\n');
  err.write(`wrote ${args.json}\n`);
  return report;
}
