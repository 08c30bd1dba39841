'use client';

/** The four cell kinds: markdown, prompt, code and viz. Each renders its editor and its outputs. */
import dynamic from 'next/dynamic';
import { useEffect, useRef, useState, type ReactElement } from 'react';
import { PARAM_RANGES, type ModelSummary, type NumberRange } from '../../server/protocol';
import { modelLabel, modelTitle } from './model-label';
import type { RunCache } from '../runs';
import { useRun } from '../runs';
import { renderMarkdown } from './format';
import type { Cell, CellOutput, CellPatch, PromptSettings, VizKind, VizSettings } from './model';
import { displayRunId, expertListError, rangeProblem, runIdOf } from './model';
import { RunView } from './run-view';
import { VIZ_KINDS } from '../viz';

// The code editor (and its large bundle) loads only when a code cell is on the page.
const CodeEditor = dynamic(() => import('./CodeEditor'), { ssr: false, loading: () => <div className="code-editor loading">loading editor…</div> });

export interface CellProps {
  cell: Cell;
  index: number;
  cells: readonly Cell[];
  selected: boolean;
  editing: boolean;
  running: boolean;
  models: ModelSummary[];
  /** What prompt cells without a model of their own run on (the notebook's); absent outside a notebook. */
  notebookModel?: string | null;
  runs: RunCache;
  /**
   * Edits of this cell's own fields, merged into the notebook as it is when they land (not into
   * this render's copy), so an edit arriving while a run writes outputs cannot drop them.
   */
  onPatch(patch: CellPatch): void;
  /** `source`: the editor's text at that moment, when it may be ahead of `cell.source`. */
  onRun(how: 'shift' | 'ctrl' | 'alt', source?: string): void;
  onStop(): void;
  onEdit(): void;
  onCommandMode(): void;
}

function TextEditor(props: { value: string; placeholder: string; autoFocus: boolean; onChange(v: string): void; onRun(how: 'shift' | 'ctrl' | 'alt', value: string): void; onEscape(): void; onFocus(): void; label: string }) {
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (props.autoFocus) ref.current?.focus();
  }, [props.autoFocus]);
  useEffect(() => {
    const t = ref.current;
    if (!t) return;
    t.style.height = 'auto';
    t.style.height = `${t.scrollHeight + 2}px`;
  }, [props.value]);
  return (
    <textarea
      ref={ref}
      className="cell-text"
      aria-label={props.label}
      value={props.value}
      placeholder={props.placeholder}
      onFocus={props.onFocus}
      onChange={(e) => props.onChange(e.target.value)}
      onKeyDown={(e) => {
        if (e.key === 'Enter' && (e.shiftKey || e.ctrlKey || e.metaKey || e.altKey)) {
          e.preventDefault();
          props.onRun(e.shiftKey ? 'shift' : e.altKey ? 'alt' : 'ctrl', e.currentTarget.value);
        } else if (e.key === 'Escape') {
          e.preventDefault();
          ref.current?.blur();
          props.onEscape();
        }
      }}
    />
  );
}

/**
 * The stack frames of a code cell's error, as the kernel names them (`at f (cell [2]:3:9)`); other
 * lines of a traceback (the message again, or an imported notebook's own format) are not repeated.
 */
function stackFrames(traceback: readonly string[]): string[] {
  return traceback.filter((l) => /^\s*at\s/.test(l)).map((l) => `  ${l.trim()}`);
}

function Outputs({ outputs, runs }: { outputs: readonly CellOutput[]; runs: RunCache }) {
  if (outputs.length === 0) return null;
  return (
    <div className="cell-outputs" data-testid="cell-output">
      {outputs.map((o, i) => {
        switch (o.type) {
          case 'stream':
            return (
              <pre key={i} className={`out-stream ${o.name}`}>
                {o.text}
              </pre>
            );
          case 'error':
            return (
              <pre key={i} className="out-error">
                {o.ename}: {o.evalue}
                {stackFrames(o.traceback).map((f, j) => (
                  <span key={j} className="out-frame">{`\n${f}`}</span>
                ))}
              </pre>
            );
          case 'run':
            return <RunView key={i} runId={o.runId} runs={runs} views={['token-strip']} />;
          case 'display':
            return <DisplayOutput key={i} kind={o.kind} data={o.data} runs={runs} />;
          default: {
            const never: never = o;
            return <pre key={i}>{JSON.stringify(never)}</pre>;
          }
        }
      })}
    </div>
  );
}


/** `lab.show(kind, data)`: data may be a run (with runId) or plain JSON. */
function DisplayOutput({ kind, data, runs }: { kind: string; data: unknown; runs: RunCache }) {
  const runId = displayRunId(data);
  if (runId && (VIZ_KINDS as readonly string[]).includes(kind)) return <RunView runId={runId} runs={runs} views={[kind as VizKind]} />;
  if (runId) return <pre className="out-error">{`lab.show: no view '${kind}'; the views are ${VIZ_KINDS.join(', ')}`}</pre>;
  return <pre className="out-stream">{typeof data === 'string' ? data : JSON.stringify(data, null, 2)}</pre>;
}

/** A field's text as a number: undefined for empty, null for text that is not (yet) one ("-", "1e"). */
function num(v: string): number | undefined | null {
  if (v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * The number fields of each cell whose text is not a valid value, by label. A run of the cell is
 * refused while any is listed (`checkFields`): the cell still holds the last valid value, and a
 * run with it would not be the run the screen shows.
 */
const invalidFields = new Map<string, Map<string, string>>();

/** Throws, with every reason, when the cell's number fields cannot run as shown. */
export function checkFields(cellId: string): void {
  const problems = [...(invalidFields.get(cellId)?.values() ?? [])];
  if (problems.length > 0) throw new Error(`${problems.join('; ')}: correct the marked field to run`);
}

function reportField(cellId: string, label: string, problem: string | null): void {
  const fields = invalidFields.get(cellId) ?? new Map<string, string>();
  if (problem === null) fields.delete(label);
  else fields.set(label, problem);
  if (fields.size === 0) invalidFields.delete(cellId);
  else invalidFields.set(cellId, fields);
}

/**
 * A number field that keeps its text as typed: "0." and "-" are steps on the way to 0.5 and -5, so
 * the text is the field's own state, and only a number in the parameter's range (or empty, the
 * default) is passed on. Anything else is kept, marked with the reason, and changes nothing: the
 * cell keeps its last valid value, so the notebook still saves.
 */
function NumberField({ cellId, label, width, range, value, onChange, hint }: { cellId: string; label: string; width: number; range: NumberRange; value: number | undefined; onChange(v: number | undefined): void; hint?: string | undefined }) {
  const [text, setText] = useState(value === undefined ? '' : String(value));
  // A value changed from outside (another tab, a reload) replaces the text; the field's own do not.
  useEffect(() => {
    const parsed = num(text);
    if (parsed !== null && parsed !== value) setText(value === undefined ? '' : String(value));
  }, [value]);
  const parsed = num(text);
  const problem = parsed === null ? `${label} must be a number, got '${text}'` : rangeProblem(label, parsed, range);
  useEffect(() => {
    reportField(cellId, label, problem);
    return () => reportField(cellId, label, null);
  }, [cellId, label, problem]);
  return (
    <label className="field">
      {label}
      <input
        style={{ width, ...(problem !== null ? { borderColor: '#ff7b7b' } : {}) }}
        value={text}
        inputMode="decimal"
        aria-label={label}
        aria-invalid={problem !== null}
        title={problem ?? hint}
        onChange={(e) => {
          setText(e.target.value);
          const n = num(e.target.value);
          if (n !== null && rangeProblem(label, n, range) === null) onChange(n);
        }}
      />
    </label>
  );
}

/** The ban and force fields: the text as typed, marked (with the reason as its tooltip) when it does not parse. */
function ExpertListField({ label, placeholder, width, value, onChange }: { label: string; placeholder: string; width: number; value: string; onChange(v: string): void }) {
  const problem = expertListError(value);
  return (
    <label className="field">
      {label}
      <input
        aria-label={label}
        aria-invalid={problem !== null}
        title={problem ?? undefined}
        placeholder={placeholder}
        // The colour of .error: the text is kept and saved as typed, but the cell will not run.
        style={{ width, ...(problem !== null ? { borderColor: '#ff7b7b' } : {}) }}
        value={value}
        onChange={(e) => onChange(e.target.value)}
      />
    </label>
  );
}

/** `notebookModel`: the model a cell without its own runs on (undefined outside a notebook). */
function PromptControls({ cellId, p, models, notebookModel, onChange }: { cellId: string; p: PromptSettings; models: ModelSummary[]; notebookModel?: string | null; onChange(p: PromptSettings): void }) {
  const set = <K extends keyof PromptSettings>(k: K, v: PromptSettings[K]) => onChange({ ...p, [k]: v });
  // An empty field means the default (for max tokens, the server's), as an absent setting does in the file.
  const field = (label: string, k: 'maxNewTokens' | 'temperature' | 'topP' | 'seed' | 'expertsPerToken' | 'topKSampling', width = 64, hint?: string) => (
    <NumberField cellId={cellId} label={label} width={width} range={PARAM_RANGES[k]} value={p[k]} onChange={(v) => set(k, v)} hint={hint} />
  );
  const own = p.model;
  return (
    <div className="prompt-controls">
      <label className="field">
        model
        {/* '' stands for null: the notebook's model. */}
        <select aria-label="model" value={own ?? ''} onChange={(e) => set('model', e.target.value || null)}>
          {(own === null || notebookModel !== undefined) && <option value="">{notebookModel === undefined ? '(choose)' : `notebook's model (${notebookModel ?? 'none set'})`}</option>}
          {own !== null && !models.some((m) => m.id === own) && <option value={own}>{own}</option>}
          {models.map((m) => (
            <option key={m.id} value={m.id} title={modelTitle(m)}>
              {modelLabel(m)}
            </option>
          ))}
        </select>
      </label>
      {field('max tokens', 'maxNewTokens', 56)}
      {field('temperature', 'temperature', 56)}
      {field('top-p', 'topP', 48)}
      {field('sampling top-k', 'topKSampling', 40, 'sample the next token among the k likeliest (0 or empty: all); not the routing top-k, which is experts/token')}
      {field('seed', 'seed', 56)}
      <ExpertListField label="ban" placeholder="L:E, *:E" width={96} value={p.ban} onChange={(v) => set('ban', v)} />
      <ExpertListField label="force" placeholder="L:E" width={80} value={p.force} onChange={(v) => set('force', v)} />
      {field('experts/token', 'expertsPerToken', 48, "the router's top-k: how many experts each token is sent to at every MoE layer (empty: the model's own)")}
    </div>
  );
}

function VizControls({ v, cells, onChange }: { v: VizSettings; cells: readonly Cell[]; onChange(v: VizSettings): void }) {
  // Cells with a run, and the cells this view is set to follow even before they have run (a fresh
  // notebook's viz cells point at prompt cells above them).
  const followed = new Set([v.source, v.sourceB].flatMap((s) => (s && 'cellId' in s ? [s.cellId] : [])));
  const sources = cells.filter((c) => runIdOf(c) || followed.has(c.id));
  const value = (s: VizSettings['source']) => (!s ? '' : 'runId' in s ? `run:${s.runId}` : `cell:${s.cellId}`);
  const parse = (x: string): VizSettings['source'] => (x.startsWith('run:') ? { runId: x.slice(4) } : x.startsWith('cell:') ? { cellId: x.slice(5) } : null);
  const select = (label: string, current: VizSettings['source'], set: (s: VizSettings['source']) => void) => (
    <label className="field">
      {label}
      <select aria-label={label} value={value(current)} onChange={(e) => set(parse(e.target.value))}>
        <option value="">(choose a run)</option>
        {sources.map((c) => (
          <option key={c.id} value={`cell:${c.id}`}>
            cell {cells.indexOf(c) + 1}: {c.source.slice(0, 30) || c.kind}
            {runIdOf(c) ? '' : ' (not run yet)'}
          </option>
        ))}
        {current && 'runId' in current && <option value={value(current)}>run {current.runId.slice(0, 8)}</option>}
      </select>
    </label>
  );
  return (
    <div className="prompt-controls">
      <label className="field">
        view
        <select aria-label="view" value={v.view} onChange={(e) => onChange({ ...v, view: e.target.value as VizKind })}>
          {VIZ_KINDS.map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
      </label>
      {select('source', v.source, (s) => onChange({ ...v, source: s }))}
      {v.view === 'compare' && select('compare with', v.sourceB ?? null, (s) => onChange({ ...v, sourceB: s }))}
    </div>
  );
}

function resolveRun(cells: readonly Cell[], s: VizSettings['source'] | undefined): string | null {
  if (!s) return null;
  if ('runId' in s) return s.runId;
  return runIdOf(cells.find((c) => c.id === s.cellId));
}

export function CellView(props: CellProps) {
  const { cell } = props;
  const run = (how: 'shift' | 'ctrl' | 'alt', source?: string) => props.onRun(how, source);
  const editorProps = {
    value: cell.source,
    autoFocus: props.editing,
    onChange: (source: string) => props.onPatch({ source }),
    onRun: run,
    onEscape: props.onCommandMode,
    onFocus: props.onEdit,
  };
  let body: ReactElement;
  switch (cell.kind) {
    case 'markdown':
      body =
        props.editing || cell.source.trim() === '' ? (
          <TextEditor {...editorProps} label="markdown" placeholder="Markdown" />
        ) : (
          // renderMarkdown escapes all input and emits only a fixed set of safe tags.
          <div className="markdown" data-testid="markdown" onDoubleClick={props.onEdit} dangerouslySetInnerHTML={{ __html: renderMarkdown(cell.source) }} />
        );
      break;
    case 'prompt':
      body = (
        <>
          <PromptControls cellId={cell.id} p={cell.prompt!} models={props.models} notebookModel={props.notebookModel} onChange={(prompt) => props.onPatch({ prompt })} />
          <TextEditor {...editorProps} label="prompt" placeholder="Prompt text" />
        </>
      );
      break;
    case 'code':
      body = <CodeEditor {...editorProps} />;
      break;
    case 'viz': {
      const v = cell.viz!;
      const runId = resolveRun(props.cells, v.source);
      const runB = resolveRun(props.cells, v.sourceB);
      body = (
        <>
          <VizControls v={v} cells={props.cells} onChange={(viz) => props.onPatch({ viz })} />
          {runId ? (
            <RunView runId={runId} runs={props.runs} views={[v.view]} compareWith={runB} />
          ) : v.source && 'cellId' in v.source && props.cells.some((c) => c.id === (v.source as { cellId: string }).cellId) ? (
            <p className="muted">Run cell {props.cells.findIndex((c) => c.id === (v.source as { cellId: string }).cellId) + 1} to see its {v.view}.</p>
          ) : (
            <p className="muted">Choose a run to show.</p>
          )}
          {/* A viz cell's source is its caption (the notebook format's), shown under the view and in exports. */}
          <label className="field viz-caption">
            caption
            <input aria-label="caption" placeholder="(none)" value={cell.source} onChange={(e) => props.onPatch({ source: e.target.value })} />
          </label>
        </>
      );
      break;
    }
    default: {
      const never: never = cell.kind;
      throw new Error(`unknown cell kind ${String(never)}`);
    }
  }
  const canRun = cell.kind === 'prompt' || cell.kind === 'code' || cell.kind === 'markdown';
  return (
    <div className={`cell kind-${cell.kind}${props.selected ? ' selected' : ''}${props.selected && props.editing ? ' editing' : ''}${cell.stale ? ' stale' : ''}`} data-testid="cell" data-kind={cell.kind} data-cell-id={cell.id}>
      <div className="cell-gutter">
        <span className="cell-count">{props.running ? '[*]' : cell.executionCount !== null ? `[${cell.executionCount}]` : '[ ]'}</span>
        <span className="cell-kind">{cell.kind}</span>
        {cell.stale && <span className="stale-badge" title="An earlier cell changed after this one ran">stale</span>}
      </div>
      <div className="cell-main">
        {body}
        {canRun && cell.kind !== 'markdown' && (
          <div className="cell-actions">
            <button onClick={() => props.onRun('ctrl')} disabled={props.running} aria-label="run cell">
              Run
            </button>
            {props.running && (
              <button className="secondary" onClick={props.onStop} aria-label="stop cell">
                Stop
              </button>
            )}
          </div>
        )}
        <Outputs outputs={cell.outputs} runs={props.runs} />
      </div>
    </div>
  );
}
