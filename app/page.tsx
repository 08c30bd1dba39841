'use client';

/** Home: the notebooks under the notebook root, and the way to the playground. */
import { useEffect, useState } from 'react';
import { createNotebook, deleteNotebook, listNotebooks, renameNotebook, type NotebookEntry } from '../components/notebook/persist';

export default function Home() {
  const [entries, setEntries] = useState<NotebookEntry[] | null>(null);
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  const refresh = () => listNotebooks().then(setEntries, (e: Error) => setError(e.message));
  useEffect(() => void refresh(), []);

  const create = async () => {
    const path = name.trim().endsWith('.moenb') ? name.trim() : `${name.trim()}.moenb`;
    try {
      await createNotebook(path);
      window.location.href = `/notebook?path=${encodeURIComponent(path)}`;
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  return (
    <main>
      <header className="home-header">
        <h1>MoE Lab</h1>
        <nav>
          <a href="/playground">Playground</a>
        </nav>
      </header>
      <p className="muted">Watch Mixture-of-Experts models route, token by token. Open a notebook or try the playground.</p>
      <div className="panel">
        <div className="row">
          <input aria-label="new notebook name" placeholder="new-notebook" value={name} onChange={(e) => setName(e.target.value)} onKeyDown={(e) => e.key === 'Enter' && name.trim() && void create()} />
          <button onClick={() => void create()} disabled={!name.trim()}>
            New notebook
          </button>
          {error && <span className="error">{error}</span>}
        </div>
      </div>
      <div className="panel">
        <table className="nb-list" data-testid="notebook-list">
          <thead>
            <tr>
              <th>Notebook</th>
              <th>Modified</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {entries?.map((e) => (
              <tr key={e.path}>
                <td>
                  <a href={`/notebook?path=${encodeURIComponent(e.path)}`}>{e.path}</a>
                </td>
                <td className="muted">{new Date(e.modified).toLocaleString()}</td>
                <td className="actions">
                  <button
                    className="secondary"
                    onClick={async () => {
                      const to = window.prompt('Rename to', e.path);
                      if (!to || to === e.path) return;
                      try {
                        await renameNotebook(e.path, to.endsWith('.moenb') ? to : `${to}.moenb`);
                        await refresh();
                      } catch (err) {
                        setError(err instanceof Error ? err.message : String(err));
                      }
                    }}
                  >
                    Rename
                  </button>
                  <button
                    className="secondary"
                    onClick={async () => {
                      if (!window.confirm(`Delete ${e.path}?`)) return;
                      await deleteNotebook(e.path);
                      await refresh();
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
            {entries?.length === 0 && (
              <tr>
                <td colSpan={3} className="muted">
                  No notebooks yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </main>
  );
}
