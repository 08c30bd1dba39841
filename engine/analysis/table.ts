/**
 * Routed positions of many runs as per-layer typed arrays: the input the metrics take. Runs must
 * share a layout (layers, experts, k), since their counts are added.
 */
import { badInput } from './errors.ts';
import type { RunTrace } from './trace.ts';
import { commonLayout } from './views.ts';

export interface RoutingTable {
  readonly layers: readonly number[];
  readonly numExperts: number;
  readonly k: number;
  /** Routed positions over all runs. */
  readonly n: number;
  /** Per MoE layer: [n·k] expert ids. */
  readonly ids: readonly Int32Array[];
  /** Per MoE layer: [n] entropies; null when some run lacks them. */
  readonly entropy: readonly Float32Array[] | null;
  /** Per MoE layer: [n·k] selected experts' router probabilities; null when some run lacks them. */
  readonly selected: readonly Float32Array[] | null;
  /** [n] index of the run (in the input order). */
  readonly run: Int32Array;
  /** [n] position within the run. */
  readonly position: Int32Array;
  /** [n] token id, −1 when unknown. */
  readonly tokenId: Int32Array;
}

export function routingTable(traces: readonly RunTrace[]): RoutingTable {
  const { layers, numExperts: E } = commonLayout(traces);
  const k = traces[0]!.k;
  const other = traces.find((t) => t.k !== k);
  if (other) throw badInput(`run '${other.runId}' routes to ${other.k} experts per token, run '${traces[0]!.runId}' to ${k}; analyse them separately`);
  const L = layers.length;
  const n = traces.reduce((a, t) => a + t.routing.length, 0);
  const ids = Array.from({ length: L }, () => new Int32Array(n * k));
  const hasH = traces.every((t) => t.routing.every((r) => r.entropy));
  const hasP = traces.every((t) => t.routing.every((r) => r.selectedProbs));
  const entropy = hasH ? Array.from({ length: L }, () => new Float32Array(n)) : null;
  const selected = hasP ? Array.from({ length: L }, () => new Float32Array(n * k)) : null;
  const run = new Int32Array(n);
  const position = new Int32Array(n);
  const tokenId = new Int32Array(n);
  let row = 0;
  traces.forEach((t, ti) => {
    for (const r of t.routing) {
      run[row] = ti;
      position[row] = r.index;
      tokenId[row] = t.tokens[r.index]?.id ?? -1;
      for (let l = 0; l < L; l++) {
        ids[l]!.set(r.ids.subarray(l * k, (l + 1) * k), row * k);
        if (entropy) entropy[l]![row] = r.entropy![l]!;
        if (selected) selected[l]!.set(r.selectedProbs!.subarray(l * k, (l + 1) * k), row * k);
      }
      row++;
    }
  });
  return { layers, numExperts: E, k, n, ids, entropy, selected, run, position, tokenId };
}
