/**
 * `moe-lab trace`: routing traces of every prompt in a JSONL file, written as trace rows
 * (docs/trace-format.md). Resumable: run the same command again after an interruption and it
 * continues where it stopped, never writing a run twice.
 */
import { parseArgs } from 'node:util';
import { AnalysisError, AnalysisErrorCode } from '../analysis/errors.ts';
import { TraceBuilder } from '../analysis/events.ts';
import { formatProgress } from '../analysis/progress.ts';
import { paramsDoc } from '../analysis/meta.ts';
import { readPromptsFile, type PromptSpec } from '../analysis/prompts.ts';
import { TraceOutput } from '../analysis/trace-output.ts';
import type { Json, JsonObject } from '../analysis/trace.ts';
import { Engine } from '../engine.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { DEFAULT_MAX_NEW_TOKENS } from '../generate/generate.ts';
import { parseExpertList } from '../generate/interventions.ts';
import type { GenerateRequest, Interventions } from '../generate/types.ts';
import { parseQuant, type QuantMode } from '../graph/quant.ts';
import { parseMaxContext } from '../runtime/memory.ts';
import type { ExecutionProvider } from '../runtime/ort.ts';

export const TRACE_USAGE = `moe-lab trace --prompts FILE.jsonl --out FILE.parquet [--model DIR] [--max-new-tokens N]
  [--temperature T] [--top-p P] [--seed S] [--ignore-eos]
  [--ban L:E,...] [--force L:E,...] [--experts-per-token K] [--provider cpu|cuda|webgpu]
  [--quant none|int8|int4] [--max-context N] [--quiet]

  One run per line of FILE.jsonl: {"prompt": "..."} or {"prompt_ids": [...]}, optionally "id";
  other fields (e.g. "domain") become columns. Greedy unless --temperature is given (seed 0 by
  default). --out may end in .parquet, .jsonl or .csv. --quant traces block-quantized weights (the
  rows' model_hash ends in :int8 or :int4); --max-context N caps the positions the model may use.
  Every prompt is checked against the context before the first one runs. Interrupted? Run the same
  command again: finished prompts are skipped and no row is written twice.`;

export interface TraceArgs {
  readonly model: string;
  readonly prompts: string;
  readonly out: string;
  readonly maxNewTokens: number;
  readonly temperature: number | undefined;
  readonly topP: number | undefined;
  readonly seed: number;
  readonly ignoreEos: boolean;
  readonly interventions: Interventions;
  readonly provider: ExecutionProvider;
  readonly quant: QuantMode;
  readonly maxContext: number | undefined;
  readonly quiet: boolean;
}

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new EngineError(EngineErrorCode.BAD_SAMPLING, `--${name} must be a number, got '${v}'`);
  return n;
}

export function parseTraceArgs(argv: string[], defaultModel: string): TraceArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompts: { type: 'string' },
      out: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      'ignore-eos': { type: 'boolean', default: false },
      ban: { type: 'string' },
      force: { type: 'string' },
      'experts-per-token': { type: 'string' },
      provider: { type: 'string' },
      quant: { type: 'string' },
      'max-context': { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.prompts || !values.out) throw new AnalysisError(AnalysisErrorCode.BAD_INPUT, 'give --prompts FILE.jsonl and --out FILE');
  const provider = (values.provider ?? 'cpu') as ExecutionProvider;
  if (!['cpu', 'cuda', 'webgpu'].includes(provider)) throw new EngineError(EngineErrorCode.PROVIDER_UNAVAILABLE, `unknown provider '${provider}' (cpu, cuda or webgpu)`);
  const maxNew = num(values['max-new-tokens'], 'max-new-tokens') ?? DEFAULT_MAX_NEW_TOKENS;
  const expertsPerToken = num(values['experts-per-token'], 'experts-per-token');
  const maxContext = parseMaxContext(values['max-context']);
  return {
    model: values.model ?? defaultModel,
    prompts: values.prompts,
    out: values.out,
    maxNewTokens: maxNew,
    temperature: num(values.temperature, 'temperature'),
    topP: num(values['top-p'], 'top-p'),
    seed: num(values.seed, 'seed') ?? 0,
    ignoreEos: values['ignore-eos'] ?? false,
    interventions: {
      ...(values.ban ? { ban: parseExpertList(values.ban) } : {}),
      ...(values.force ? { force: parseExpertList(values.force) } : {}),
      ...(expertsPerToken !== undefined ? { topK: expertsPerToken } : {}),
    },
    provider,
    quant: parseQuant(values.quant),
    maxContext,
    quiet: values.quiet ?? false,
  };
}

/** Errors about one prompt, which name its line; the others are about options and name none. */
const PROMPT_ERRORS: ReadonlySet<string> = new Set([EngineErrorCode.PROMPT_TOO_LONG, EngineErrorCode.BAD_PROMPT, EngineErrorCode.NO_TOKENIZER, EngineErrorCode.NON_FINITE]);

/** Parameters recorded with every run; a resumed trace must use the same. */
function runParams(a: TraceArgs): JsonObject {
  return paramsDoc({ maxNewTokens: a.maxNewTokens, temperature: a.temperature, topP: a.topP, seed: a.seed, ignoreEos: a.ignoreEos, interventions: a.interventions });
}

function requestFor(p: PromptSpec, a: TraceArgs): GenerateRequest {
  return {
    ...(p.prompt !== undefined ? { prompt: p.prompt } : { promptIds: p.promptIds! }),
    maxNewTokens: a.maxNewTokens,
    seed: a.seed,
    ignoreEos: a.ignoreEos,
    sampling: { ...(a.temperature !== undefined ? { temperature: a.temperature } : {}), ...(a.topP !== undefined ? { topP: a.topP } : {}) },
    interventions: a.interventions,
  };
}

export async function runTrace(argv: string[], defaultModel: string, err: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr): Promise<void> {
  const args = parseTraceArgs(argv, defaultModel);
  const prompts = readPromptsFile(args.prompts);
  const output = await TraceOutput.open(args.out);
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  let engine: Engine | null = null;
  try {
    engine = await Engine.load(args.model, { provider: args.provider, quant: args.quant, ...(args.maxContext !== undefined ? { maxContext: args.maxContext } : {}) });
    const params = runParams(args);
    output.checkCompatible({ modelHash: engine.info.hash, params });
    const todo = prompts.filter((p) => !output.done.has(p.runId));
    const skipped = prompts.length - todo.length;
    if (skipped > 0 && !args.quiet) err.write(`resuming: ${skipped} of ${prompts.length} prompts already traced in ${args.out}\n`);
    // Said even with --quiet: these runs stay in OUT and count in every analysis of it.
    const listed = new Set(prompts.map((p) => p.runId));
    const others = [...output.done.keys()].filter((id) => !listed.has(id));
    if (others.length > 0) {
      err.write(`warning: ${args.out} also holds ${others.length} run(s) that are not in ${args.prompts} (${others.slice(0, 3).join(', ')}${others.length > 3 ? ', …' : ''}); they are kept\n`);
    }

    const promptLengths: number[] = [];
    for (const p of todo) promptLengths.push(p.promptIds ? p.promptIds.length : (await engine.encode(p.prompt!)).length);
    // A prompt the context cannot hold fails now, not after the prompts before it have run.
    const context = engine.info.contextLength;
    todo.forEach((p, i) => {
      if (promptLengths[i]! >= context) {
        throw new EngineError(EngineErrorCode.PROMPT_TOO_LONG, `${args.prompts}:${p.line}: the prompt has ${promptLengths[i]} tokens; it must be shorter than the context of ${context} positions`, {
          promptTokens: promptLengths[i]!,
          context,
        });
      }
    });
    const totalTokens = promptLengths.reduce((a, n) => a + n + args.maxNewTokens, 0);
    const t0 = performance.now();
    let doneTokens = 0;
    let donePrompts = 0;
    let lastDraw = 0;
    const tty = err.isTTY === true;
    const draw = (force: boolean) => {
      if (args.quiet) return;
      const now = performance.now();
      if (!force && (!tty || now - lastDraw < 100)) return;
      lastDraw = now;
      const line = formatProgress({ donePrompts, totalPrompts: todo.length, doneTokens, totalTokens, elapsedMs: now - t0 });
      err.write(tty ? `\r${line}` : `${line}\n`);
    };

    for (const p of todo) {
      if (controller.signal.aborted) break;
      const builder = new TraceBuilder({
        runId: p.runId,
        model: engine.info,
        meta: {
          source: 'moe-lab',
          prompt: p.prompt ?? null,
          params,
          interventions: Object.keys(args.interventions).length > 0 ? (args.interventions as unknown as Json) : null,
          fields: p.fields,
          extra: { ...p.extra, prompt_line: p.line, ...(p.promptIds ? { prompt_ids: [...p.promptIds] } : {}) },
        },
      });
      let cancelled = false;
      try {
        for await (const ev of engine.generate(requestFor(p, args), { signal: controller.signal })) {
          builder.push(ev);
          if (ev.type === 'routing') {
            doneTokens++;
            draw(false);
          } else if (ev.type === 'done' && ev.reason === 'cancelled') cancelled = true;
        }
      } catch (e) {
        // A run cancelled before its first token can end in an engine error rather than a
        // 'cancelled' done event; either way it is dropped and run again on resume.
        if (controller.signal.aborted) cancelled = true;
        else if (e instanceof EngineError && PROMPT_ERRORS.has(e.code)) throw new EngineError(e.code, `${args.prompts}:${p.line}: ${e.message}`, e.details);
        else throw e;
      }
      if (cancelled) break;
      output.commit(builder.finish());
      donePrompts++;
      draw(true);
    }
    if (tty && !args.quiet) err.write('\n');
    const interrupted = controller.signal.aborted && donePrompts < todo.length;
    const { runs, rows } = await output.finalize(prompts.map((p) => p.runId));
    if (!args.quiet) {
      const secs = (performance.now() - t0) / 1000;
      err.write(`wrote ${runs} run(s), ${rows} rows to ${args.out} (${donePrompts} traced now, ${(doneTokens / Math.max(secs, 1e-9)).toFixed(1)} tok/s)\n`);
    }
    if (interrupted) {
      err.write(`interrupted: ${todo.length - donePrompts} prompt(s) left; run the same command again to resume\n`);
      process.exitCode = 130;
    }
  } finally {
    process.off('SIGINT', onSigint);
    output.release();
    await engine?.dispose();
  }
}
