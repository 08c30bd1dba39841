'use client';

/** A run's output in a cell: its views, fed live from the page's run cache. */
import type { RunEvent } from '../../server/protocol';
import type { RunCache } from '../runs';
import { useRun } from '../runs';
import type { VizKind } from './model';
import { VizView } from '../viz';

function summaryLine(events: RunEvent[]): string {
  const last = events[events.length - 1];
  if (!last) return '';
  if (last.t === 'done') {
    const tps = last.decodeTokensPerSecond !== null ? `${last.decodeTokensPerSecond.toFixed(1)} tok/s` : '';
    return `${last.reason} · ${last.promptTokens} prompt + ${last.generatedTokens} new tokens · ${tps}`;
  }
  if (last.t === 'error') return `error ${last.code}: ${last.message}`;
  const n = events.filter((e) => e.t === 'token' && e.phase === 'decode').length;
  return `generating… ${n} tokens`;
}

export function RunView({ runId, runs, views, compareWith }: { runId: string; runs: RunCache; views: VizKind[]; compareWith?: string | null }) {
  const state = useRun(runs, runId);
  const other = useRun(runs, compareWith ?? null);
  if (state.status === 'missing') return <p className="muted">Run {runId.slice(0, 8)} is no longer stored.</p>;
  // A run that failed before it routed a token has nothing to draw: its error, in the error style,
  // takes the views' place rather than a grey line under empty charts.
  const failure = state.events.find((e) => e.t === 'error');
  const routed = state.events.some((e) => e.t === 'routing');
  if (failure && failure.t === 'error' && !routed) {
    return (
      <div className="run-view" data-run-id={runId}>
        <pre className="out-error">
          {`${failure.code}: ${failure.message}`}
          {failure.code === 'ENGINE_NO_TOKENIZER' ? '\nIn a prompt cell, give the prompt as token ids: ids: 5, 17, 3' : ''}
        </pre>
        {/* The error is said once, above. */}
        <div className="run-summary muted" data-testid="run-summary">
          failed <span className="run-id">run {runId.slice(0, 8)}</span>
        </div>
      </div>
    );
  }
  return (
    <div className="run-view" data-run-id={runId}>
      {views.map((v) => (
        <VizView key={v} kind={v} events={state.events} version={state.version} compareEvents={compareWith ? other.events : null} compareVersion={other.version} />
      ))}
      <div className="run-summary muted" data-testid="run-summary">
        {summaryLine(state.events)} <span className="run-id">run {runId.slice(0, 8)}</span>
        {state.status === 'done' && (
          <span className="trace-links">
            trace:{' '}
            {(['parquet', 'jsonl', 'csv'] as const).map((f) => (
              <a key={f} href={`/api/runs/${runId}/trace?format=${f}`} download>
                {f}
              </a>
            ))}
          </span>
        )}
      </div>
    </div>
  );
}
