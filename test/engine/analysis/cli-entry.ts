/**
 * The `trace` and `analyze` commands behind the real dispatcher, for tests that run the CLI as a
 * child process (and kill it).
 */
import { AnalysisError } from '../../../engine/analysis/errors.ts';
import { ANALYZE_USAGE, runAnalyze } from '../../../engine/cli/analyze.ts';
import { BUILTIN_MODEL, main, type Command } from '../../../engine/cli/main.ts';
import { runTrace, TRACE_USAGE } from '../../../engine/cli/trace.ts';

/** Prints analysis errors with their code, as the dispatcher does for engine errors. */
const withCodes =
  (run: Command): Command =>
  async (argv) => {
    try {
      await run(argv);
    } catch (e) {
      if (!(e instanceof AnalysisError)) throw e;
      process.stderr.write(`error [${e.code}]: ${e.message}\n`);
      process.exitCode = 2;
    }
  };

await main(process.argv.slice(2), {
  trace: { usage: TRACE_USAGE, run: withCodes((argv) => runTrace(argv, BUILTIN_MODEL)) },
  analyze: { usage: ANALYZE_USAGE, run: withCodes(async (argv) => void (await runAnalyze(argv))) },
});
