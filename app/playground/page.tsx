'use client';

/** One prompt with every routing view, no notebook needed. */
import { useEffect, useMemo, useRef, useState } from 'react';
import { LabClient, engineSocketUrl } from '../../components/lab-client';
import { apiJson } from '../../components/api';
import { RunCache, useRun } from '../../components/runs';
import { RunView } from '../../components/notebook/run-view';
import { promptParams, newCell, settingsFromParams, type Cell } from '../../components/notebook/model';
import { generateParamsSchema, runDetailSchema } from '../../server/protocol';
import { CellView, checkFields } from '../../components/notebook/cells';

export default function Playground() {
  const client = useRef<LabClient | null>(null);
  const runs = useMemo(() => new RunCache(), []);
  const [status, setStatus] = useState('connecting');
  const [models, setModels] = useState<LabClient['models']>([]);
  const [cell, setCell] = useState<Cell>(() => ({ ...newCell('prompt'), source: 'The quick brown fox' }));
  const [runId, setRunId] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const c = new LabClient(engineSocketUrl(window.location));
    client.current = c;
    c.onStatus = setStatus;
    // Every greeting, so a server that was not up at the first attempt still fills the list.
    c.onModels = (models) => {
      setModels(models);
      setCell((cur) => (cur.prompt && !cur.prompt.model ? { ...cur, prompt: { ...cur.prompt, model: models[0]?.id ?? '' } } : cur));
    };
    void c.connect().catch(() => {});
    // A reload (or a shared link) shows the run in the address bar again, with the settings it ran
    // with, and follows it if it is still generating.
    const shown = new URLSearchParams(window.location.search).get('run');
    if (shown) {
      void (async () => {
        try {
          const body = await apiJson(await fetch(`/api/runs/${encodeURIComponent(shown)}`), runDetailSchema);
          const params = generateParamsSchema.safeParse(body.run['params']);
          if (params.success) setCell((cur) => ({ ...cur, ...settingsFromParams(params.data) }));
          setRunId(shown);
          await runs.ensure(shown, c);
        } catch (e) {
          setError(`run ${shown.slice(0, 8)}: ${e instanceof Error ? e.message : String(e)}`);
        }
      })();
    }
    return () => c.close();
  }, []);
  const shownRun = useRun(runs, runId);
  const busy = running || shownRun.status === 'streaming';

  const run = async () => {
    const c = client.current;
    if (!c) return;
    setError(null);
    setRunning(true);
    try {
      checkFields(cell.id);
      let id = '';
      id = await c.generate(promptParams(cell), {
        onEvents: (evs) => {
          runs.append(id, evs);
          if (evs.some((e) => e.t === 'done' || e.t === 'error')) setRunning(false);
        },
      });
      runs.start(id);
      setRunId(id);
      window.history.replaceState(null, '', `?run=${encodeURIComponent(id)}`);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setRunning(false);
    }
  };

  return (
    <main className="wide">
      <header className="home-header">
        <a href="/">MoE Lab</a>
        <nav>
          <span className="muted">playground · {status}</span>
        </nav>
      </header>
      <div data-testid="playground">
        <CellView
          cell={cell}
          index={0}
          cells={[cell]}
          selected
          editing={false}
          running={busy}
          models={models}
          runs={runs}
          onPatch={(patch) => setCell((cur) => ({ ...cur, ...patch }))}
          onRun={() => void run()}
          onStop={() => runId && client.current?.cancel(runId)}
          onEdit={() => {}}
          onCommandMode={() => {}}
        />
        {error && <p className="error">{error}</p>}
        {runId && <RunView runId={runId} runs={runs} views={['token-strip', 'heatmap', 'routing-grid', 'latency', 'coactivation']} />}
      </div>
    </main>
  );
}
