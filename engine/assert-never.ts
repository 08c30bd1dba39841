/** Exhaustiveness check for switches over tagged unions: a new variant fails to compile. */
export function assertNever(x: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(x)}`);
}
