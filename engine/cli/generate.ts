/**
 * `moe-lab generate`: one generation from the command line, as text or as JSON lines with the
 * routing of every position.
 */
import { parseArgs } from 'node:util';
import { Engine } from '../engine.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { parseExpertList } from '../generate/interventions.ts';
import type { GenerateRequest, GenerationEvent } from '../generate/types.ts';
import { parseQuant, type QuantMode } from '../graph/quant.ts';
import type { ExecutionProvider } from '../runtime/ort.ts';

export const GENERATE_USAGE = `moe-lab generate [--model DIR] (--prompt TEXT | --prompt-ids 1,2,3)
  [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k-sampling K] [--seed S]
  [--stop TEXT]... [--ban L:E,...] [--force L:E,...] [--experts-per-token K]
  [--provider cpu|cuda|webgpu] [--quant none|int8|int4] [--json] [--diagnostics]

  Greedy unless --temperature is given. L is a model layer index or * for every MoE layer.
  --json prints one JSON object per position (prompt first), once its routing is known:
  {"index","id","text","phase","routing":[{"layer","ids","weights"}],"ms"}
  --diagnostics profiles every step and prints per-layer time (attention, MLP) to stderr.
  --quant runs block-quantized weights (built on first use; see moe-lab import).`;

/** Mean per-layer milliseconds over decode steps (and the prefill on its own line). */
export function formatProfile(steps: Extract<GenerationEvent, { type: 'profile' }>['steps']): string {
  const lines: string[] = ['per-layer time (ms)        attention      mlp    other'];
  const summarize = (label: string, group: typeof steps) => {
    if (group.length === 0) return;
    const n = group.length;
    const total = group.reduce((a, s) => a + s.totalMs, 0) / n;
    lines.push(`${label}: ${total.toFixed(2)} ms per step over ${n} step(s), ${(group.reduce((a, s) => a + s.outsideLayersMs, 0) / n).toFixed(2)} ms outside layers`);
    for (let l = 0; l < group[0]!.layers.length; l++) {
      const avg = (f: (x: (typeof group)[number]['layers'][number]) => number) => (group.reduce((a, s) => a + f(s.layers[l]!), 0) / n).toFixed(3).padStart(9);
      lines.push(`  layer ${String(l).padEnd(18)}${avg((x) => x.attentionMs)}${avg((x) => x.mlpMs)}${avg((x) => x.otherMs)}`);
    }
  };
  summarize('prefill', steps.filter((s) => s.phase === 'prefill'));
  summarize('decode', steps.filter((s) => s.phase === 'decode'));
  return lines.join('\n') + '\n';
}

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new EngineError(EngineErrorCode.BAD_SAMPLING, `--${name} must be a number, got '${v}'`);
  return n;
}

export function parseGenerateArgs(
  argv: string[],
  defaultModel: string,
): { model: string; request: GenerateRequest; json: boolean; provider: ExecutionProvider; diagnostics: boolean; quant: QuantMode } {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'prompt-ids': { type: 'string' },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'top-k-sampling': { type: 'string' },
      seed: { type: 'string' },
      stop: { type: 'string', multiple: true },
      ban: { type: 'string' },
      force: { type: 'string' },
      'experts-per-token': { type: 'string' },
      provider: { type: 'string' },
      quant: { type: 'string' },
      json: { type: 'boolean', default: false },
      diagnostics: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const promptIds = values['prompt-ids']?.split(',').filter((s) => s.trim() !== '').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n)) throw new EngineError(EngineErrorCode.BAD_PROMPT, `--prompt-ids: '${s}' is not an integer`);
    return n;
  });
  if ((values.prompt === undefined) === (promptIds === undefined)) {
    throw new EngineError(EngineErrorCode.BAD_PROMPT, 'give exactly one of --prompt or --prompt-ids');
  }
  const provider = (values.provider ?? 'cpu') as ExecutionProvider;
  if (!['cpu', 'cuda', 'webgpu'].includes(provider)) {
    throw new EngineError(EngineErrorCode.PROVIDER_UNAVAILABLE, `unknown provider '${provider}' (cpu, cuda or webgpu)`);
  }
  const temperature = num(values.temperature, 'temperature');
  const topP = num(values['top-p'], 'top-p');
  const topK = num(values['top-k-sampling'], 'top-k-sampling');
  const expertsPerToken = num(values['experts-per-token'], 'experts-per-token');
  const maxNew = num(values['max-new-tokens'], 'max-new-tokens');
  const seed = num(values.seed, 'seed');
  const request: GenerateRequest = {
    ...(values.prompt !== undefined ? { prompt: values.prompt } : {}),
    ...(promptIds ? { promptIds } : {}),
    ...(maxNew !== undefined ? { maxNewTokens: maxNew } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(values.stop ? { stop: values.stop } : {}),
    sampling: {
      ...(temperature !== undefined ? { temperature } : {}),
      ...(topP !== undefined ? { topP } : {}),
      ...(topK !== undefined ? { topK } : {}),
    },
    interventions: {
      ...(values.ban ? { ban: parseExpertList(values.ban) } : {}),
      ...(values.force ? { force: parseExpertList(values.force) } : {}),
      ...(expertsPerToken !== undefined ? { topK: expertsPerToken } : {}),
    },
  };
  return {
    model: values.model ?? defaultModel,
    request,
    json: values.json ?? false,
    provider,
    diagnostics: values.diagnostics ?? false,
    quant: parseQuant(values.quant),
  };
}

export async function runGenerate(argv: string[], defaultModel: string, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<void> {
  const args = parseGenerateArgs(argv, defaultModel);
  const engine = await Engine.load(args.model, { provider: args.provider, diagnostics: args.diagnostics, quant: args.quant });
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    const pending = new Map<number, Extract<GenerationEvent, { type: 'token' }>>();
    let stepMs = 0;
    for await (const ev of engine.generate(args.request, { signal: controller.signal })) {
      switch (ev.type) {
        case 'start':
          break;
        case 'token':
          if (args.json) pending.set(ev.index, ev);
          else if (ev.phase === 'prefill') out.write(ev.text ?? '');
          else out.write(ev.delta ?? `[${ev.id}]`);
          break;
        case 'timing':
          stepMs = ev.ms;
          break;
        case 'routing': {
          if (!args.json) break;
          const tok = pending.get(ev.index);
          pending.delete(ev.index);
          const line = {
            index: ev.index,
            id: tok?.id ?? null,
            text: tok?.text ?? null,
            phase: ev.phase,
            routing: ev.layers.map((l) => ({ layer: l.layer, ids: l.ids, weights: l.weights.map((w) => Number(w.toPrecision(7))) })),
            ms: Number(stepMs.toFixed(3)),
          };
          out.write(JSON.stringify(line) + '\n');
          break;
        }
        case 'profile':
          err.write(formatProfile(ev.steps));
          break;
        case 'done':
          if (!args.json) out.write('\n');
          err.write(
            `[${ev.reason}] ${ev.promptTokens} prompt + ${ev.generatedTokens} new tokens; ` +
              `prefill ${ev.prefillTokensPerSecond?.toFixed(1) ?? '-'} tok/s, decode ${ev.decodeTokensPerSecond?.toFixed(1) ?? '-'} tok/s, ` +
              `ttft ${ev.ttftMs?.toFixed(1) ?? '-'} ms\n`,
          );
          break;
        default:
          assertNeverEvent(ev);
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
    await engine.dispose();
  }
}

function assertNeverEvent(ev: never): never {
  throw new Error(`unexpected event ${JSON.stringify(ev)}`);
}
