#!/usr/bin/env node
// Entry point of the `moe-lab` command: load the TypeScript sources through tsx, then run the CLI.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
