/**
 * Expert-parallel load balance for a placement of experts on devices, as EPLB plans it
 * (DeepSeek-AI 2024, "DeepSeek-V3 Technical Report", §3.4; github.com/deepseek-ai/EPLB).
 */
import { badInput } from '../errors.ts';

export interface Placement {
  /** Physical expert slots per layer (E plus the redundant replicas). */
  readonly slots: number;
  /**
   * The logical expert in each physical slot (EPLB's `phy2log`): [L·slots] per layer, or [slots]
   * for the same placement at every layer. Slots go to devices in order, slots / D each.
   */
  readonly phy2log: Int32Array;
  readonly devices: number;
}

/** E experts, no replicas, E / D consecutive experts per device (the default expert-parallel layout). */
export function contiguousPlacement(E: number, devices: number): Placement {
  return { slots: E, phy2log: Int32Array.from({ length: E }, (_, e) => e), devices };
}

export interface Balancedness {
  /** Σ_l mean_d load(l, d) / Σ_l max_d load(l, d), as vLLM's EPLB reports it. 1 = perfectly even. */
  readonly overall: number;
  /** mean_d / max_d at each layer. */
  readonly perLayer: Float64Array;
  /** [L·D] device loads. */
  readonly deviceLoad: Float64Array;
}

/**
 * Balancedness of `load` [L·E] (tokens per logical expert, e.g. `loadMatrix`) under a placement.
 * A logical expert with r replicas splits its load evenly over them (EPLB's assumption);
 * load(l, d) sums the slots on device d. Balancedness = mean_d load / max_d load.
 */
export function eplbBalancedness(load: Float64Array, L: number, E: number, placement: Placement): Balancedness {
  const D = placement.devices;
  const S = placement.slots;
  if (placement.phy2log.length !== S && placement.phy2log.length !== S * L) throw badInput(`a placement of ${S} slots needs ${S} or ${S * L} entries, got ${placement.phy2log.length}`);
  const layered = placement.phy2log.length !== S;
  if (!(Number.isInteger(D) && D >= 1) || S % D !== 0) throw badInput(`${S} physical slots do not split evenly over ${D} devices`);
  const deviceLoad = new Float64Array(L * D);
  const ratio = new Float64Array(L);
  let sumMean = 0;
  let sumMax = 0;
  for (let l = 0; l < L; l++) {
    const slots = layered ? placement.phy2log.subarray(l * S, (l + 1) * S) : placement.phy2log;
    const replicas = new Float64Array(E);
    for (const e of slots) {
      if (!(e >= 0 && e < E)) throw badInput(`placement names expert ${e}, outside 0 … ${E - 1}`);
      replicas[e]!++;
    }
    for (let e = 0; e < E; e++) if (replicas[e] === 0 && load[l * E + e]! > 0) throw badInput(`expert ${e} has load at layer ${l} but no slot in the placement`);
    const perDevice = S / D;
    let max = 0;
    let total = 0;
    for (let s = 0; s < S; s++) {
      const e = slots[s]!;
      const x = load[l * E + e]! / replicas[e]!;
      deviceLoad[l * D + Math.floor(s / perDevice)]! += x;
      total += x;
    }
    for (let d = 0; d < D; d++) max = Math.max(max, deviceLoad[l * D + d]!);
    const mean = total / D;
    ratio[l] = max > 0 ? mean / max : 0;
    sumMean += mean;
    sumMax += max;
  }
  return { overall: sumMax > 0 ? sumMean / sumMax : 0, perLayer: ratio, deviceLoad };
}
