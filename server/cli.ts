/** The `moe-lab` command: the engine's commands plus `serve`. */
import { ENGINE_COMMANDS, main } from '../engine/cli/main.ts';
import { runServe, SERVE_USAGE } from './serve.ts';

await main(process.argv.slice(2), { ...ENGINE_COMMANDS, serve: { usage: SERVE_USAGE, run: runServe } });
