// Worker threads start from plain JavaScript: register the TypeScript loader here, then load the
// worker itself. (A .ts worker entry is resolved before any --import hook could apply.)
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
