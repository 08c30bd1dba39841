/**
 * The models a server offers: folders given on the command line plus every checkpoint folder in
 * the models directory. Each is loaded lazily, once, into its own engine worker.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Engine, type ModelInfo } from '../engine/engine.ts';
import type { RunnerOptions } from '../engine/runtime/runner.ts';
import type { ModelSummary } from './protocol.ts';

interface Entry {
  readonly dir: string;
  engine: Promise<Engine> | null;
  info: ModelInfo | null;
}

export class ModelRegistry {
  private readonly entries = new Map<string, Entry>();

  constructor(
    dirs: readonly string[],
    private readonly options: RunnerOptions = {},
    /** Told each warning of a model as it loads (unused tensors, a shortened context). */
    private readonly onWarning: (modelId: string, warning: string) => void = () => {},
  ) {
    for (const d of dirs) {
      const dir = resolve(d);
      if (!this.entries.has(basename(dir))) this.entries.set(basename(dir), { dir, engine: null, info: null });
    }
  }

  /** Checkpoint folders (those with a config.json) directly inside `root`. */
  static scan(root: string): string[] {
    if (!existsSync(root)) return [];
    return readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(root, d.name, 'config.json')))
      .map((d) => join(root, d.name))
      .sort();
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  get ids(): string[] {
    return [...this.entries.keys()];
  }

  async engine(id: string): Promise<{ engine: Engine; info: ModelInfo }> {
    const e = this.entries.get(id);
    if (!e) throw new Error(`unknown model ${id}`);
    if (!e.engine) {
      e.engine = Engine.load(e.dir, this.options);
      e.engine.then(
        (engine) => {
          e.info = engine.info;
          for (const w of engine.info.warnings) this.onWarning(id, w);
        },
        () => (e.engine = null),
      );
    }
    const engine = await e.engine;
    return { engine, info: engine.info };
  }

  summary(id: string): ModelSummary {
    const e = this.entries.get(id)!;
    const i = e.info;
    return {
      id,
      loaded: i !== null,
      hash: i?.hash ?? null,
      modelType: i?.modelType ?? null,
      numLayers: i?.numLayers ?? null,
      moeLayers: i ? [...i.moeLayers] : null,
      numExperts: i?.numExperts ?? null,
      topK: i?.topK ?? null,
      contextLength: i?.contextLength ?? null,
      hasTokenizer: i?.hasTokenizer ?? null,
      quant: this.options.quant ?? 'none',
      weightBytes: i?.memory.weights ?? null,
      warnings: i ? [...i.warnings] : null,
    };
  }

  summaries(): ModelSummary[] {
    return this.ids.map((id) => this.summary(id));
  }

  async dispose(): Promise<void> {
    for (const e of this.entries.values()) {
      if (!e.engine) continue;
      try {
        await (await e.engine).dispose();
      } catch {
        // A model that failed to load has nothing to dispose.
      }
    }
  }
}
