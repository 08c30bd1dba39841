'use client';

import { useEffect, useRef, useState } from 'react';
import { LabClient, engineSocketUrl } from '../components/lab-client';
import type { ModelSummary, RunEvent } from '../server/protocol';

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac', '#1f77b4', '#d62728', '#17becf', '#bcbd22', '#8c564b', '#e377c2'];

interface Tok {
  index: number;
  text: string;
  phase: 'prefill' | 'decode';
  top1?: number;
}

export default function Playground() {
  const client = useRef<LabClient | null>(null);
  const [status, setStatus] = useState('connecting');
  const [models, setModels] = useState<ModelSummary[]>([]);
  const [model, setModel] = useState('');
  const [prompt, setPrompt] = useState('The quick brown fox');
  const [tokens, setTokens] = useState<Tok[]>([]);
  const [runId, setRunId] = useState<string | null>(null);
  const [summary, setSummary] = useState('');

  useEffect(() => {
    const c = new LabClient(engineSocketUrl(window.location));
    client.current = c;
    c.onStatus = setStatus;
    c.connect()
      .then(() => {
        setModels(c.models);
        setModel(c.models[0]?.id ?? '');
      })
      .catch(() => setStatus('closed'));
    return () => c.close();
  }, []);

  const run = async () => {
    if (!client.current) return;
    setTokens([]);
    setSummary('');
    const id = await client.current.generate({ model, prompt, maxNewTokens: 48 }, {
      onEvents(events: RunEvent[]) {
        setTokens((prev) => {
          const next = [...prev];
          for (const e of events) {
            if (e.t === 'token') next[e.index] = { index: e.index, text: e.text ?? `[${e.id}]`, phase: e.phase };
            // Colour each token by the top-1 expert of the last MoE layer.
            if (e.t === 'routing' && next[e.index]) next[e.index] = { ...next[e.index]!, top1: e.ids[e.ids.length - (e.ids.length / e.h.length)] };
          }
          return next;
        });
        for (const e of events) {
          if (e.t === 'done') {
            setSummary(`${e.reason} · ${e.generatedTokens} tokens · ${e.decodeTokensPerSecond?.toFixed(1) ?? '–'} tok/s`);
            setRunId(null);
          }
          if (e.t === 'error') {
            setSummary(`error ${e.code}: ${e.message}`);
            setRunId(null);
          }
        }
      },
    }).catch((e: Error) => {
      setSummary(e.message);
      return null;
    });
    setRunId(id);
  };

  return (
    <main>
      <h1>MoE Lab — playground</h1>
      <div className="panel">
        <textarea value={prompt} onChange={(e) => setPrompt(e.target.value)} aria-label="prompt" />
        <div className="row">
          <select value={model} onChange={(e) => setModel(e.target.value)} aria-label="model">
            {models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id}
              </option>
            ))}
          </select>
          <button onClick={run} disabled={status !== 'open' || !model || runId !== null}>
            Run
          </button>
          <button onClick={() => runId && client.current?.cancel(runId)} disabled={runId === null}>
            Stop
          </button>
          <span className="muted">{status === 'open' ? summary : status}</span>
        </div>
      </div>
      <div className="panel tokens" data-testid="tokens">
        {tokens.map((t) => (
          <span key={t.index} className="tok" title={t.top1 !== undefined ? `expert ${t.top1}` : ''} style={{ background: t.top1 !== undefined ? `${PALETTE[t.top1 % PALETTE.length]}55` : undefined, opacity: t.phase === 'prefill' ? 0.75 : 1 }}>
            {t.text}
          </span>
        ))}
      </div>
    </main>
  );
}
