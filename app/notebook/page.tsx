'use client';

import { Suspense } from 'react';
import { useSearchParams } from 'next/navigation';
import NotebookEditor from '../../components/notebook/NotebookEditor';

function Editor() {
  const path = useSearchParams().get('path');
  if (!path) return <p className="muted">No notebook given. Go back to the <a href="/">notebook list</a>.</p>;
  return <NotebookEditor path={path} />;
}

export default function NotebookPage() {
  return (
    <main className="wide">
      <header className="home-header">
        <a href="/">MoE Lab</a>
        <nav>
          <a href="/playground">Playground</a>
        </nav>
      </header>
      <Suspense fallback={<p className="muted">Opening…</p>}>
        <Editor />
      </Suspense>
    </main>
  );
}
