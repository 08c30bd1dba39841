/**
 * Diagnostic mode: onnxruntime's profiler records every kernel's duration; this turns a profile
 * into a per-step, per-layer breakdown. Graph node names carry their scope ("layers.3/attn/…",
 * "layers.3/moe/…"), which is how kernel time is attributed to a layer and a sub-block.
 */
import { z } from 'zod';

const eventSchema = z.object({
  cat: z.string(),
  name: z.string(),
  ts: z.number(),
  dur: z.number(),
});

export interface LayerTime {
  /** Model layer index. */
  readonly layer: number;
  readonly attentionMs: number;
  /** MoE block (router + experts + shared expert) or dense MLP. */
  readonly mlpMs: number;
  /** Norms and residual adds of the layer. */
  readonly otherMs: number;
}

export interface StepProfile {
  /** Wall time of the run as the profiler saw it. */
  readonly totalMs: number;
  readonly layers: LayerTime[];
  /** Kernel time outside any layer: embeddings, masks, final norm, LM head, routing outputs. */
  readonly outsideLayersMs: number;
}

const SCOPE = /^layers\.(\d+)\/(attn|moe|mlp)?/;

/** Splits a profile (onnxruntime's JSON trace) into one breakdown per `model_run`. */
export function stepProfiles(trace: unknown, numLayers: number): StepProfile[] {
  const events = z.array(z.unknown()).parse(trace).flatMap((e) => {
    const r = eventSchema.safeParse(e);
    return r.success ? [r.data] : [];
  });
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
  const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  return runs.map((run) => {
    const layers = Array.from({ length: numLayers }, (_, layer) => ({ layer, attentionMs: 0, mlpMs: 0, otherMs: 0 }));
    let outside = 0;
    for (const k of kernels) {
      if (k.ts < run.ts || k.ts > run.ts + run.dur) continue;
      const ms = k.dur / 1000;
      const m = SCOPE.exec(k.name);
      const l = m ? layers[Number(m[1])] : undefined;
      if (!l) outside += ms;
      else if (m![2] === 'attn') l.attentionMs += ms;
      else if (m![2] === 'moe' || m![2] === 'mlp') l.mlpMs += ms;
      else l.otherMs += ms;
    }
    return { totalMs: run.dur / 1000, layers, outsideLayersMs: outside };
  });
}
