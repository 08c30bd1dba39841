/**
 * Server log. Lines are written to stderr with a timestamp. Nothing that could carry the access
 * token is ever passed here: request logging uses the path without its query string.
 */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string, e?: unknown): void;
}

export function consoleLogger(quiet = false): Logger {
  const line = (level: string, msg: string) => process.stderr.write(`${new Date().toISOString()} ${level} ${msg}\n`);
  return {
    info: (m) => !quiet && line('info', m),
    warn: (m) => line('warn', m),
    error: (m, e) => line('error', `${m}${e ? `: ${e instanceof Error ? e.stack ?? e.message : String(e)}` : ''}`),
  };
}

/** Collects lines in memory (tests assert that the token never reaches the log). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m, e) => lines.push(`error ${m} ${e instanceof Error ? e.message : String(e ?? '')}`),
  };
}
