/** The trace progress line: a bar, throughput and the time left, from plain numbers. */

export interface ProgressState {
  readonly donePrompts: number;
  readonly totalPrompts: number;
  /** Positions routed so far in this session (prompt and generated tokens). */
  readonly doneTokens: number;
  /** Positions expected in this session: Σ (prompt tokens + max new tokens) of the prompts to run. */
  readonly totalTokens: number;
  readonly elapsedMs: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * `[#######.......] 3/10 prompts  1234 tok  456.7 tok/s  ETA 0:12`. The ETA assumes the rest runs
 * at the rate so far; early stops (EOS) only make it pessimistic.
 */
export function formatProgress(p: ProgressState, width = 24): string {
  const frac = p.totalTokens > 0 ? Math.min(1, p.doneTokens / p.totalTokens) : p.totalPrompts > 0 ? p.donePrompts / p.totalPrompts : 1;
  const filled = Math.round(frac * width);
  const rate = p.elapsedMs > 0 ? (p.doneTokens / p.elapsedMs) * 1000 : 0;
  const eta = rate > 0 ? Math.max(0, p.totalTokens - p.doneTokens) / rate : Infinity;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.donePrompts}/${p.totalPrompts} prompts  ${p.doneTokens} tok  ${rate.toFixed(1)} tok/s  ETA ${p.donePrompts >= p.totalPrompts ? '0:00' : formatDuration(eta)}`;
}
