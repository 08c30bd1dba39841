/** `moe-lab` command dispatcher for the engine's commands. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AnalysisError } from '../analysis/errors.ts';
import { EngineError } from '../errors.ts';
import { ANALYZE_USAGE, runAnalyze } from './analyze.ts';
import { GENERATE_USAGE, runGenerate } from './generate.ts';
import { IMPORT_USAGE, runImport } from './import.ts';
import { QUANT_COST_USAGE, runQuantCost } from './quant-cost.ts';
import { runTrace, TRACE_USAGE } from './trace.ts';

/** The model that ships with MoE Lab. */
export const BUILTIN_MODEL = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'moe-lab-tiny');

export type Command = (argv: string[]) => Promise<void>;

export const ENGINE_COMMANDS: Record<string, { usage: string; run: Command }> = {
  generate: { usage: GENERATE_USAGE, run: (argv) => runGenerate(argv, BUILTIN_MODEL) },
  trace: { usage: TRACE_USAGE, run: (argv) => runTrace(argv, BUILTIN_MODEL) },
  analyze: { usage: ANALYZE_USAGE, run: async (argv) => void (await runAnalyze(argv)) },
  import: { usage: IMPORT_USAGE, run: async (argv) => void (await runImport(argv)) },
  'quant-cost': { usage: QUANT_COST_USAGE, run: async (argv) => void (await runQuantCost(argv, BUILTIN_MODEL)) },
};

/** Runs a command, printing `error [CODE]: message` and exiting 2 on failure. */
export async function main(argv: string[], commands: Record<string, { usage: string; run: Command }>): Promise<void> {
  const [name, ...rest] = argv;
  const cmd = name ? commands[name] : undefined;
  if (!cmd || rest.includes('--help') || rest.includes('-h')) {
    const usage = Object.values(commands).map((c) => c.usage).join('\n\n');
    (cmd ? process.stdout : process.stderr).write(`${cmd ? cmd.usage : usage}\n`);
    process.exitCode = cmd ? 0 : 2;
    return;
  }
  // A reader that stops early (`generate --json | head`) is no error: what is left goes nowhere, and
  // a streaming command stops as on Ctrl-C (process.exit here would tear the engine's worker down
  // mid-step).
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.stdout.write = () => true;
    process.emit('SIGINT');
  });
  try {
    await cmd.run(rest);
  } catch (e) {
    if (e instanceof EngineError || e instanceof AnalysisError) process.stderr.write(`error [${e.code}]: ${e.message}\n`);
    // The system's own codes (ENOENT, EACCES, ENOSPC…) are stable too.
    else if (e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string') process.stderr.write(`error [${(e as NodeJS.ErrnoException).code}]: ${e.message}\n`);
    else process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
  }
}

export function builtinModelAvailable(): boolean {
  return existsSync(join(BUILTIN_MODEL, 'config.json'));
}
