'use client';

import { useEffect, useRef } from 'react';
import type * as Monaco from 'monaco-editor';
import { loadMonaco } from './monaco';

export interface CodeEditorProps {
  value: string;
  language?: 'typescript' | 'markdown';
  onChange(value: string): void;
  /** Shift+Enter, Ctrl+Enter, Alt+Enter inside the editor, as in Jupyter; with the text as it is now. */
  onRun(how: 'shift' | 'ctrl' | 'alt', value: string): void;
  /** Escape: leave edit mode. */
  onEscape(): void;
  onFocus(): void;
  autoFocus?: boolean;
}

/**
 * A Monaco editor that grows with its content. It is uncontrolled once created: `value` is its
 * initial text. (Feeding typed text back in would race the keyboard: while React catches up, the
 * prop lags behind the editor.) A cell whose source changes from outside gets a new editor.
 */
export default function CodeEditor(props: CodeEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<Monaco.editor.IStandaloneCodeEditor | null>(null);
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    let disposed = false;
    void loadMonaco().then((monaco) => {
      if (disposed || !host.current) return;
      const ed = monaco.editor.create(host.current, {
        value: latest.current.value,
        language: latest.current.language ?? 'typescript',
        theme: 'vs-dark',
        minimap: { enabled: false },
        scrollBeyondLastLine: false,
        automaticLayout: true,
        fontSize: 13,
        lineNumbers: 'on',
        renderLineHighlight: 'none',
        scrollbar: { alwaysConsumeMouseWheel: false, vertical: 'hidden' },
        overviewRulerLanes: 0,
        tabSize: 2,
      });
      editor.current = ed;
      const fit = () => {
        if (host.current) host.current.style.height = `${Math.max(ed.getContentHeight(), 38)}px`;
      };
      ed.onDidContentSizeChange(fit);
      fit();
      ed.onDidChangeModelContent(() => latest.current.onChange(ed.getValue()));
      ed.onDidFocusEditorText(() => latest.current.onFocus());
      const { KeyMod, KeyCode } = monaco;
      // The editor's own text is passed along: React may not have rendered the last keystrokes yet.
      ed.addCommand(KeyMod.Shift | KeyCode.Enter, () => latest.current.onRun('shift', ed.getValue()));
      ed.addCommand(KeyMod.CtrlCmd | KeyCode.Enter, () => latest.current.onRun('ctrl', ed.getValue()));
      ed.addCommand(KeyMod.Alt | KeyCode.Enter, () => latest.current.onRun('alt', ed.getValue()));
      ed.addCommand(KeyCode.Escape, () => {
        (document.activeElement as HTMLElement | null)?.blur();
        latest.current.onEscape();
      });
      if (latest.current.autoFocus) ed.focus();
    });
    return () => {
      disposed = true;
      editor.current?.getModel()?.dispose();
      editor.current?.dispose();
      editor.current = null;
    };
  }, []);

  useEffect(() => {
    if (props.autoFocus) editor.current?.focus();
  }, [props.autoFocus]);

  return <div ref={host} className="code-editor" data-testid="code-editor" />;
}
