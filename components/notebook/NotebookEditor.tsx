'use client';

/**
 * The notebook editor: Jupyter's command and edit modes and keyboard shortcuts, running cells
 * (prompt cells on the server, code cells in the notebook's kernel worker), stale marks, autosave
 * and explicit save.
 *
 * Command mode (Esc): Enter edit · Shift+Enter run and select below · Ctrl+Enter run ·
 * Alt+Enter run and insert below · A / B insert above / below · D D delete · M markdown ·
 * Y code · P prompt · ↑/K ↓/J select · I I interrupt · Ctrl+S save.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { z } from 'zod';
import { runDetailSchema, type RunEvent } from '../../server/protocol';
import { apiJson } from '../api';
import { Kernel, type KernelOutput } from '../kernel/kernel';
import { LabClient, engineSocketUrl } from '../lab-client';
import { RunCache } from '../runs';
import { CellView, checkFields } from './cells';
import { runForKernel } from './kernel-run';
import { downloadHtml, downloadIpynb, loadNotebook, saveNotebook, type LoadedNotebook } from './persist';
import {
  changeKind, displayRunId, endedRunOutput, insertCell, newCell, patchCell, promptParams, removeCell, updateCell,
  type Cell, type CellKind, type CellOutput, type NotebookModel,
} from './model';

/** `urgent`: save now — a run just started, and its id must survive a reload to be resumed. */
type SaveState = 'saved' | 'dirty' | 'urgent' | 'saving' | 'error';

/** The longest an unsaved change waits for the autosave, however often the notebook keeps changing. */
const MAX_UNSAVED_MS = 10_000;

export default function NotebookEditor({ path }: { path: string }) {
  const [nb, setNb] = useState<NotebookModel | null>(null);
  const [loaded, setLoaded] = useState<LoadedNotebook | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState(0);
  const [editing, setEditing] = useState(false);
  const [running, setRunning] = useState<Set<string>>(new Set());
  const [save, setSave] = useState<SaveState>('saved');
  const [connection, setConnection] = useState('connecting');
  const [kernelState, setKernelState] = useState('idle');
  const [models, setModels] = useState<LabClient['models']>([]);
  const client = useRef<LabClient | null>(null);
  const kernel = useRef<Kernel | null>(null);
  const runs = useMemo(() => new RunCache(), []);
  const counter = useRef(0);
  const cellRuns = useRef(new Map<string, string>());
  const nbRef = useRef(nb);
  nbRef.current = nb;
  const lastD = useRef(0);
  const lastI = useRef(0);

  // ---- load, connect ------------------------------------------------------------------------
  useEffect(() => {
    let cancelled = false;
    loadNotebook(path).then(
      (l) => {
        if (cancelled) return;
        setLoaded(l);
        setNb(l.model);
      },
      (e: Error) => setError(e.message),
    );
    const c = new LabClient(engineSocketUrl(window.location));
    client.current = c;
    c.onStatus = setConnection;
    // Every greeting, so a server that was not up at the first attempt still fills the list.
    c.onModels = setModels;
    void c.connect().catch(() => {});
    return () => {
      cancelled = true;
      c.close();
      kernel.current?.dispose();
    };
  }, [path]);

  // Runs the notebook shows: load them, and resume any still running on the server. Checked on every
  // change, not only at load: `lab.show` may show a stored run the page has not seen.
  useEffect(() => {
    if (!nb || connection !== 'open') return;
    for (const cell of nb.cells) {
      for (const o of cell.outputs) {
        const runId = o.type === 'run' ? o.runId : o.type === 'display' ? displayRunId(o.data) : null;
        if (runId) void runs.ensure(runId, client.current);
      }
      // Viz cells may point straight at stored runs.
      for (const s of [cell.viz?.source, cell.viz?.sourceB]) if (s && 'runId' in s) void runs.ensure(s.runId, client.current);
    }
  }, [nb, connection, runs]);

  // ---- editing --------------------------------------------------------------------------------
  /** When the oldest change not yet being saved was made (null: none). */
  const dirtySince = useRef<number | null>(null);
  const change = useCallback((f: (cells: readonly Cell[]) => Cell[]) => {
    setNb((cur) => (cur ? { ...cur, cells: f(cur.cells) } : cur));
    dirtySince.current ??= Date.now();
    setSave('dirty');
  }, []);

  // Saves run one at a time: each carries the file version the previous one produced (the server
  // refuses a write based on an older version), and a save asked for meanwhile runs right after.
  const loadedRef = useRef(loaded);
  loadedRef.current = loaded;
  const saving = useRef<Promise<void> | null>(null);
  const saveAgain = useRef(false);
  /** The next save writes over the file as it is now (the page's answer to a conflict). */
  const overwriteNext = useRef(false);
  const doSave = useCallback((): Promise<void> => {
    if (saving.current) {
      saveAgain.current = true;
      return saving.current;
    }
    const run = async () => {
      do {
        saveAgain.current = false;
        const cur = nbRef.current;
        const base = loadedRef.current;
        if (!cur || !base) return;
        dirtySince.current = null;
        setSave('saving');
        try {
          const overwrite = overwriteNext.current;
          overwriteNext.current = false;
          const next = await saveNotebook(base, cur, { overwrite });
          loadedRef.current = next;
          setLoaded(next);
          setSave((s) => (s === 'saving' ? 'saved' : s));
        } catch (e) {
          setSave('error');
          setError(e instanceof Error ? e.message : String(e));
          return;
        }
      } while (saveAgain.current);
    };
    saving.current = run().finally(() => {
      saving.current = null;
    });
    return saving.current;
  }, []);

  // Autosave two seconds after the last change (at once when a run started), and at the latest ten
  // seconds after the first unsaved one: a cell's timer printing every second must not put it off.
  useEffect(() => {
    if (save !== 'dirty' && save !== 'urgent') return;
    const latest = (dirtySince.current ?? Date.now()) + MAX_UNSAVED_MS - Date.now();
    const t = setTimeout(() => void doSave(), save === 'urgent' ? 50 : Math.max(0, Math.min(2000, latest)));
    return () => clearTimeout(t);
  }, [save, nb, doSave]);

  // ---- running --------------------------------------------------------------------------------
  const setOutputs = (id: string, f: (o: readonly CellOutput[]) => CellOutput[], extra: Partial<Cell> = {}) =>
    change((cells) => updateCell(cells, id, (c) => ({ ...c, ...extra, outputs: f(c.outputs) })));

  /** Adds a code cell's output; consecutive writes to one stream join into one output, as Jupyter shows them. */
  const appendOutput = (id: string, o: KernelOutput) => {
    // A deleted cell's timers may still print: there is nowhere to put that, and nothing to save.
    if (!nbRef.current?.cells.some((c) => c.id === id)) return;
    const out: CellOutput = o.type === 'stream' ? o : o.type === 'display' ? { type: 'display', kind: o.kind, data: o.data } : o;
    setOutputs(id, (prev) => {
      const last = prev[prev.length - 1];
      if (out.type === 'stream' && last?.type === 'stream' && last.name === out.name) return [...prev.slice(0, -1), { ...last, text: last.text + out.text }];
      return [...prev, out];
    });
  };

  /** Runs of each cell not yet ended. */
  const pendingRuns = useRef(new Map<string, number>());
  const setNotRunning = (cellId: string) =>
    setRunning((r) => {
      const n = new Set(r);
      n.delete(cellId);
      return n;
    });
  /** Records in a prompt cell's output how its run `runId` ended (`end`: its done or error event). */
  const recordRunEnd = (cellId: string, runId: string, end: RunEvent) =>
    setOutputs(cellId, (os) => os.map((x) => (x.type === 'run' && x.runId === runId ? endedRunOutput(x, end) : x)));
  /**
   * A prompt cell's run that was still going when the page loaded (a reload mid-run): the cell shows
   * it running ([*]) and its Stop cancels it, and once it ends its output records how, as for a run
   * started here; a run that ended while no page was open is recorded on load.
   */
  const resumed = useRef(new Set<string>());
  useEffect(() => {
    if (!nb || connection !== 'open') return;
    for (const cell of nb.cells) {
      if (cell.kind !== 'prompt') continue;
      for (const o of cell.outputs) {
        if (o.type !== 'run' || o.status !== 'running' || resumed.current.has(o.runId) || cellRuns.current.get(cell.id) === o.runId) continue;
        const { runId } = o;
        const cellId = cell.id;
        resumed.current.add(runId);
        let unsubscribe = () => {};
        const check = () => {
          const st = runs.get(runId);
          if (st.status === 'streaming') {
            if (!cellRuns.current.has(cellId)) {
              cellRuns.current.set(cellId, runId);
              setRunning((r) => new Set(r).add(cellId));
            }
            return;
          }
          if (st.status !== 'done' && st.status !== 'failed') return;
          unsubscribe();
          if (cellRuns.current.get(cellId) === runId) cellRuns.current.delete(cellId);
          // A run of the cell started here since keeps it running.
          if (!pendingRuns.current.has(cellId)) setNotRunning(cellId);
          const end = st.events.findLast((e) => e.t === 'done' || e.t === 'error');
          if (end) recordRunEnd(cellId, runId, end);
        };
        unsubscribe = runs.subscribe(runId, check);
        check();
      }
    }
  }, [nb, connection, runs]);

  /** Runs started by code cells (lab.generate) and not finished: Interrupt cancels them. */
  const codeRuns = useRef(new Set<string>());
  const kernelHost = useCallback(async (method: string, args: unknown[]): Promise<unknown> => {
    const c = client.current;
    switch (method) {
      case 'models':
        return c?.models ?? [];
      case 'analyze': {
        const ids = (args[0] as string[]).join(',');
        const by = (args[1] as { by?: string } | undefined)?.by;
        return apiJson(await fetch(`/api/analysis?runs=${encodeURIComponent(ids)}${by ? `&by=${encodeURIComponent(by)}` : ''}`), z.unknown());
      }
      case 'runs':
        return (await apiJson(await fetch('/api/runs'), z.object({ runs: z.array(z.unknown()) }))).runs;
      case 'run': {
        const id = String(args[0]);
        const body = await apiJson(await fetch(`/api/runs/${encodeURIComponent(id)}`), runDetailSchema);
        return runForKernel(id, body.run.modelId, body.events);
      }
      case 'generate': {
        if (!c) throw new Error('not connected');
        const params = { ...(args[0] as Record<string, unknown>) };
        params['model'] ??= nbRef.current?.model?.id ?? c.models[0]?.id;
        let runId = '';
        try {
          await new Promise<void>((resolve, reject) => {
            c.generate(params, {
              onEvents: (evs) => {
                runs.append(runId, evs);
                if (evs.some((e) => e.t === 'done' || e.t === 'error')) resolve();
              },
              onError: (code, message) => reject(new Error(`${code}: ${message}`)),
            }).then((id) => {
              runId = id;
              runs.start(id);
              codeRuns.current.add(id);
            }, reject);
          });
        } finally {
          codeRuns.current.delete(runId);
        }
        return runForKernel(runId, String(params['model']), runs.get(runId).events);
      }
      default:
        throw new Error(`unknown lab call ${method}`);
    }
  }, [runs]);

  const runCell = useCallback(async (index: number, sourceNow?: string) => {
    const stored = nbRef.current?.cells[index];
    if (!stored) return;
    const cell = sourceNow !== undefined ? { ...stored, source: sourceNow } : stored;
    if (cell.kind === 'markdown') {
      setEditing(false);
      return;
    }
    if (cell.kind === 'viz') return;
    // Only cells that execute take a number, as in Jupyter: Run all numbers them 1, 2, 3…
    const count = ++counter.current;
    // A cell run again before its last run ended stays running ([*]) until every run of it has ended.
    pendingRuns.current.set(cell.id, (pendingRuns.current.get(cell.id) ?? 0) + 1);
    setRunning((r) => new Set(r).add(cell.id));
    const finish = () => {
      const left = (pendingRuns.current.get(cell.id) ?? 1) - 1;
      if (left > 0) return void pendingRuns.current.set(cell.id, left);
      pendingRuns.current.delete(cell.id);
      setNotRunning(cell.id);
    };
    if (cell.kind === 'prompt') {
      const c = client.current;
      // How the run ended, for Run all: it goes on after a finished run and stops at one that
      // failed or was cancelled, as it does at a code cell that throws.
      let ended: (ok: boolean) => void = () => {};
      const outcome = new Promise<boolean>((resolve) => (ended = resolve));
      try {
        if (!c) throw new Error('not connected to the server');
        checkFields(cell.id);
        // A cell without a model of its own runs on the notebook's, else on the server's first, as lab.generate does.
        const params = promptParams(cell, nbRef.current?.model?.id ?? c.models[0]?.id ?? null);
        let runId = '';
        const id = await c.generate(params, {
          onEvents: (evs) => {
            runs.append(runId, evs);
            const end = evs.find((e) => e.t === 'done' || e.t === 'error');
            if (end) {
              recordRunEnd(cell.id, runId, end);
              cellRuns.current.delete(cell.id);
              finish();
              ended(end.t === 'done' && end.reason !== 'cancelled');
            }
          },
        });
        runId = id;
        runs.start(id);
        cellRuns.current.set(cell.id, id);
        const model = c.models.find((m) => m.id === params['model']);
        setOutputs(cell.id, () => [{ type: 'run', runId: id, modelId: String(params['model']), modelHash: model?.hash ?? null, status: 'running' }], { executionCount: count, stale: false });
        setSave('urgent');
      } catch (e) {
        setOutputs(cell.id, () => [{ type: 'error', ename: 'RunError', evalue: e instanceof Error ? e.message : String(e), traceback: [] }], { executionCount: count, stale: false });
        finish();
        return false;
      }
      return await outcome;
    }
    // code
    kernel.current ??= Object.assign(new Kernel(kernelHost), {});
    kernel.current.onState = setKernelState;
    kernel.current.onBackgroundOutput = appendOutput;
    // Outputs are cleared when this run starts, not when it is queued, so a run queued behind an
    // earlier run of the same cell does not interleave with that run's output.
    const start = () => setOutputs(cell.id, () => [], { executionCount: count, stale: false });
    const onOutput = (o: KernelOutput) => appendOutput(cell.id, o);
    const outcome = await kernel.current.run(cell.id, cell.source, onOutput, start, `cell [${count}]`);
    if (outcome === 'interrupted') onOutput({ type: 'error', ename: 'Interrupted', evalue: 'the kernel was stopped and restarted; its variables are gone', traceback: [] });
    finish();
    // Outputs are saved as soon as the cell finishes, not after the edit debounce.
    setSave('urgent');
    return outcome === 'ok';
  }, [kernelHost, runs]);


  const runAndMove = useCallback(async (index: number, how: 'shift' | 'ctrl' | 'alt', sourceNow?: string) => {
    const cur = nbRef.current;
    if (!cur) return;
    void runCell(index, sourceNow);
    if (how === 'ctrl') return;
    setEditing(false);
    if (how === 'alt' || index === cur.cells.length - 1) {
      change((cells) => insertCell(cells, index + 1, newCell('code', nbRef.current?.model?.id ?? '')));
    }
    setSelected(index + 1);
    if (how === 'alt') setEditing(true);
  }, [change, runCell]);

  /** Bumped when the kernel is stopped: a Run all in progress stops before its next cell. */
  const runAllGeneration = useRef(0);
  /**
   * Interrupt and Restart both replace the kernel: a Run all in progress stops before its next cell,
   * and the generations code cells started stop with it (nothing waits for them any more).
   */
  const stopKernel = (how: 'interrupt' | 'restart') => {
    runAllGeneration.current++;
    kernel.current?.[how]();
    for (const id of codeRuns.current) client.current?.cancel(id);
    codeRuns.current.clear();
  };

  // A code cell's Stop is the toolbar's Interrupt: the kernel is one worker, so stopping the cell
  // stops the kernel, and with it the generations the cell was waiting for.
  const stopCell = (cell: Cell) => {
    const runId = cellRuns.current.get(cell.id);
    if (runId) client.current?.cancel(runId);
    else if (cell.kind === 'code') stopKernel('interrupt');
  };

  // As in Jupyter, Run all runs one cell after another (a prompt cell until its run ends) and stops
  // at a cell that fails or is interrupted.
  const runAll = async () => {
    const cur = nbRef.current;
    if (!cur) return;
    const generation = ++runAllGeneration.current;
    for (let i = 0; i < cur.cells.length; i++) {
      if (runAllGeneration.current !== generation) return;
      if ((await runCell(i)) === false) return;
    }
  };

  // ---- command-mode keyboard ----------------------------------------------------------------
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const cur = nbRef.current;
      if (!cur) return;
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') {
        e.preventDefault();
        void doSave();
        return;
      }
      const target = e.target as HTMLElement | null;
      const inField = !!target && (target.tagName === 'TEXTAREA' || target.tagName === 'INPUT' || target.tagName === 'SELECT' || target.isContentEditable || !!target.closest('.monaco-editor'));
      if (inField) return;
      // A key a view used (arrows in the token strip or the routing grid) is not a notebook command.
      if (e.defaultPrevented) return;
      // Edit mode ends once focus has left the cell's fields (a click on Run moves it to the page):
      // the key is a command, as after Esc.
      if (editing) setEditing(false);
      const n = cur.cells.length;
      const model = cur.model?.id ?? models[0]?.id ?? '';
      const setKind = (kind: CellKind) => change((cells) => cells.map((c, i) => (i === selected ? changeKind(c, kind, model) : c)));
      switch (e.key) {
        case 'Enter':
          e.preventDefault();
          if (e.shiftKey) void runAndMove(selected, 'shift');
          else if (e.ctrlKey || e.metaKey) void runAndMove(selected, 'ctrl');
          else if (e.altKey) void runAndMove(selected, 'alt');
          else setEditing(true);
          return;
        case 'ArrowUp':
        case 'k':
          e.preventDefault();
          setSelected((s) => Math.max(0, s - 1));
          return;
        case 'ArrowDown':
        case 'j':
          e.preventDefault();
          setSelected((s) => Math.min(n - 1, s + 1));
          return;
        case 'a':
          change((cells) => insertCell(cells, selected, newCell('code', model)));
          return;
        case 'b':
          change((cells) => insertCell(cells, selected + 1, newCell('code', model)));
          setSelected((s) => s + 1);
          return;
        case 'd':
          if (Date.now() - lastD.current < 600) {
            lastD.current = 0;
            change((cells) => (cells.length > 1 ? removeCell(cells, selected) : [newCell('code', model)]));
            setSelected((s) => Math.max(0, Math.min(s, n - 2)));
          } else lastD.current = Date.now();
          return;
        case 'i':
          if (Date.now() - lastI.current < 600) {
            lastI.current = 0;
            stopKernel('interrupt');
          } else lastI.current = Date.now();
          return;
        case 'm':
          setKind('markdown');
          return;
        case 'y':
          setKind('code');
          return;
        case 'p':
          setKind('prompt');
          return;
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [editing, selected, models, change, runAndMove, doSave]);

  if (error && !nb) return <p className="error">Could not open {path}: {error}</p>;
  if (!nb) return <p className="muted">Opening {path}…</p>;
  const notebookRuns = nb.cells.flatMap((c) => c.outputs.flatMap((o) => (o.type === 'run' ? [o.runId] : [])));

  return (
    <div className="notebook" data-testid="notebook" data-mode={editing ? 'edit' : 'command'}>
      <div className="toolbar">
        <strong className="nb-title">{path}</strong>
        <button onClick={() => void doSave()} aria-label="save">
          Save
        </button>
        <button onClick={() => void runAll()} aria-label="run all">
          Run all
        </button>
        <button className="secondary" onClick={() => stopKernel('interrupt')} aria-label="interrupt">
          Interrupt
        </button>
        <button className="secondary" onClick={() => stopKernel('restart')} aria-label="restart kernel">
          Restart
        </button>
        <span className="muted" data-testid="save-state">
          {save === 'saved' ? 'saved' : save === 'saving' ? 'saving…' : save === 'dirty' || save === 'urgent' ? 'unsaved changes' : `save failed: ${explainSaveError(error)}`}
        </span>
        {save === 'error' && error?.startsWith('NOTEBOOK_CONFLICT') && (
          // The file changed elsewhere (another tab, another person): keep this page's version over
          // it, or load that one and lose this page's unsaved edits.
          <span className="conflict">
            <button
              className="secondary"
              aria-label="keep my version"
              onClick={() => {
                overwriteNext.current = true;
                void doSave();
              }}
            >
              Keep mine
            </button>{' '}
            <button className="secondary" aria-label="load the saved version" onClick={() => window.location.reload()}>
              Load theirs
            </button>
          </span>
        )}
        <span className="muted">
          {connection} · kernel {kernelState} · {editing ? 'edit' : 'command'} mode
        </span>
        <span className="export">
          {notebookRuns.length > 0 ? (
            <a
              className="button-link"
              aria-label="export traces"
              title="routing traces of this notebook's prompt cells, as Parquet"
              download
              href={`/api/traces?format=parquet&runs=${notebookRuns.join(',')}`}
            >
              traces
            </a>
          ) : (
            <button className="secondary" aria-label="export traces" disabled title="run a prompt cell first">
              traces
            </button>
          )}{' '}
          <button className="secondary" aria-label="export ipynb" onClick={() => loaded && downloadIpynb(loaded, nb)}>
            .ipynb
          </button>{' '}
          <button
            className="secondary"
            aria-label="export html"
            onClick={() => {
              if (!loaded) return;
              const ids = nb.cells.flatMap((c) => c.outputs.flatMap((o) => (o.type === 'run' ? [o.runId] : [])));
              downloadHtml(loaded, nb, Object.fromEntries(ids.map((id) => [id, runs.get(id).events])));
            }}
          >
            .html
          </button>
        </span>
      </div>
      {nb.cells.map((cell, i) => (
        <div key={cell.id} onMouseDown={() => setSelected(i)}>
          <CellView
            cell={cell}
            index={i}
            cells={nb.cells}
            selected={i === selected}
            editing={i === selected && editing}
            running={running.has(cell.id)}
            models={models}
            notebookModel={nb.model?.id ?? models[0]?.id ?? null}
            runs={runs}
            onPatch={(patch) => change((cells) => patchCell(cells, cell.id, patch))}
            onRun={(how, source) => void runAndMove(i, how, source)}
            onStop={() => stopCell(cell)}
            onEdit={() => {
              setSelected(i);
              setEditing(true);
            }}
            onCommandMode={() => setEditing(false)}
          />
        </div>
      ))}
      <div className="add-cells">
        {(['prompt', 'code', 'markdown', 'viz'] as const).map((k) => (
          <button key={k} className="secondary" onClick={() => change((cells) => [...cells, newCell(k, nb.model?.id ?? models[0]?.id ?? '')])}>
            + {k}
          </button>
        ))}
      </div>
    </div>
  );
}

/**
 * A save error with what to do about it where the code alone would not say: every server start makes
 * a new access token, so after a restart this page is no longer signed in.
 */
export function explainSaveError(error: string | null): string {
  if (error?.startsWith('AUTH_')) return `${error} — the server restarted or this session ended: open the URL it printed in a new tab (it signs this browser in again with the new access token), then save here`;
  return error ?? '';
}
