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
    const actions: Monaco.IDisposable[] = [];
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
      // Actions, not `addCommand`: a command's key binding is global to the page and outlives its
      // editor, so after a cell is deleted its editor would keep answering Ctrl+Enter everywhere.
      // An action's binding holds only while its own editor has focus.
      const bind = (id: string, label: string, key: number, run: () => void, when?: string) =>
        actions.push(ed.addAction({ id: `moe-lab.${id}`, label, keybindings: [key], keybindingContext: when, run }));
      // The editor's own text is passed along: React may not have rendered the last keystrokes yet.
      bind('run-shift', 'Run cell and select below', KeyMod.Shift | KeyCode.Enter, () => latest.current.onRun('shift', ed.getValue()));
      bind('run-ctrl', 'Run cell', KeyMod.CtrlCmd | KeyCode.Enter, () => latest.current.onRun('ctrl', ed.getValue()));
      bind('run-alt', 'Run cell and insert below', KeyMod.Alt | KeyCode.Enter, () => latest.current.onRun('alt', ed.getValue()));
      // Escape closes the editor's own popups first; with none open it leaves edit mode.
      bind(
        'command-mode',
        'Leave edit mode',
        KeyCode.Escape,
        () => {
          (document.activeElement as HTMLElement | null)?.blur();
          latest.current.onEscape();
        },
        '!suggestWidgetVisible && !parameterHintsVisible && !findWidgetVisible',
      );
      if (latest.current.autoFocus) ed.focus();
    });
    return () => {
      disposed = true;
      // Editor first, then its model: disposing a model an editor still shows makes the editor
      // detach it mid-dispose, and Monaco throws from inside its own event delivery.
      for (const a of actions) a.dispose();
      const ed = editor.current;
      const model = ed?.getModel();
      ed?.dispose();
      if (model && !model.isDisposed()) model.dispose();
      editor.current = null;
    };
  }, []);

  useEffect(() => {
    if (props.autoFocus) editor.current?.focus();
  }, [props.autoFocus]);

  return <div ref={host} className="code-editor" data-testid="code-editor" />;
}
