'use client';

/** One prompt with every routing view, no notebook needed. */
import { useEffect, useMemo, useRef, useState } from 'react';
import { LabClient, engineSocketUrl } from '../../components/lab-client';
import { RunCache } from '../../components/runs';
import { RunView } from '../../components/notebook/run-view';
import { promptParams, newCell, type Cell } from '../../components/notebook/model';
import { CellView, fieldProblems } from '../../components/notebook/cells';

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
    return () => c.close();
  }, []);

  const run = async () => {
    const c = client.current;
    if (!c) return;
    setError(null);
    setRunning(true);
    try {
      const bad = fieldProblems(cell.id);
      if (bad.length > 0) throw new Error(`${bad.join('; ')}: correct the marked field to run`);
      let id = '';
      id = await c.generate(promptParams(cell), {
        onEvents: (evs) => {
          runs.append(id, evs);
          if (evs.some((e) => e.t === 'done' || e.t === 'error')) setRunning(false);
        },
      });
      runs.start(id);
      setRunId(id);
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
          running={running}
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
