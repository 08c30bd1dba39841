/** The `moe-lab` command: engine commands, plus the server's (added by the server). */
import { ENGINE_COMMANDS, main } from '../engine/cli/main.ts';

await main(process.argv.slice(2), { ...ENGINE_COMMANDS });
