/**
 * Loads the code editor from this server (/vendor/monaco, straight from the monaco-editor package),
 * once, on the first code cell: never from a CDN, and never in pages without code cells.
 * Its web workers come from the same place.
 */
import type * as Monaco from 'monaco-editor';

export type MonacoApi = typeof Monaco;

const BASE = '/vendor/monaco/vs';
let loading: Promise<MonacoApi> | null = null;

interface TsDefaults {
  setCompilerOptions(o: Record<string, unknown>): void;
  setDiagnosticsOptions(o: { diagnosticCodesToIgnore?: number[] }): void;
  addExtraLib(content: string, path: string): void;
}

interface AmdRequire {
  (deps: string[], ok: () => void, fail: (e: unknown) => void): void;
  config(c: { paths: Record<string, string> }): void;
}

/** Type declarations of the `lab` API, so notebook code gets completions and checks. */
export const LAB_TYPES = `
interface LabToken { index: number; id: number; text: string | null; phase: 'prefill' | 'decode' }
interface LabRouting { index: number; phase: 'prefill' | 'decode'; layers: { layer: number; ids: number[]; weights: number[]; entropy: number; /** Without the load-balancing bias (DeepSeek-V3 routers only). */ unbiasedIds?: number[] }[] }
interface LabRun { runId: string; model: string; text: string | null; tokens: LabToken[]; routing: LabRouting[]; summary: { reason: string; generatedTokens: number; decodeTokensPerSecond: number | null } | null }
interface LabGenerateParams {
  model?: string; prompt?: string; promptIds?: number[]; maxNewTokens?: number; seed?: number;
  sampling?: { temperature?: number; topK?: number; topP?: number };
  interventions?: { ban?: { layer: number | 'all'; expert: number }[]; force?: { layer: number | 'all'; expert: number }[]; topK?: number };
}
declare const lab: {
  /** Runs a generation on the server and resolves when it is done. */
  generate(params: LabGenerateParams): Promise<LabRun>;
  /** Recent runs, newest first. */
  runs(options?: { limit?: number }): Promise<{ id: string; modelId: string; status: string; createdAt: string }[]>;
  /** A stored run. */
  run(runId: string): Promise<LabRun>;
  models(): Promise<{ id: string }[]>;
  /** Routing metrics over runs (load CV, max/mean, entropy, consecutive-token rates vs random, co-activation), optionally grouped by a run field. */
  analyze(runs: (LabRun | string)[], options?: { by?: string }): Promise<Record<string, unknown>>;
  /** Shows a visualization in this cell's output: 'token-strip' | 'routing-grid' | 'heatmap' | 'latency' | 'coactivation'. */
  show(kind: string, data: LabRun | { runId: string } | unknown): void;
};
`;

export function loadMonaco(): Promise<MonacoApi> {
  loading ??= new Promise<MonacoApi>((resolve, reject) => {
    const script = document.createElement('script');
    script.src = `${BASE}/loader.js`;
    script.onerror = () => reject(new Error('could not load the code editor'));
    script.onload = () => {
      const req = (window as unknown as { require: AmdRequire }).require;
      req.config({ paths: { vs: BASE } });
      req(
        ['vs/editor/editor.main'],
        () => {
          const monaco = (window as unknown as { monaco: MonacoApi }).monaco;
          // The TypeScript service moved to the top-level `typescript` namespace in this editor version.
          const defaults = (monaco as unknown as { typescript: { typescriptDefaults: TsDefaults } }).typescript.typescriptDefaults;
          defaults.setCompilerOptions({ target: 9 /* ES2022 */, strict: true, allowNonTsExtensions: true, lib: ['es2022', 'webworker'] });
          defaults.addExtraLib(LAB_TYPES, 'file:///moe-lab/lab.d.ts');
          // Cells are scripts (their top-level names are shared, as the kernel shares them) that may
          // await at the top level, which the kernel allows: TypeScript's "only allowed in a module"
          // (1375, 1378) does not apply to them.
          defaults.setDiagnosticsOptions({ diagnosticCodesToIgnore: [1375, 1378] });
          resolve(monaco);
        },
        reject,
      );
    };
    document.head.appendChild(script);
  });
  return loading;
}
