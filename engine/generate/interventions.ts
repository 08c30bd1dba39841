/** Validates interventions and turns them into the graph's route_bias input [Lm, E]. */
import type { ModelConfig } from '../checkpoint/config.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { FORCE_BIAS } from '../routing.ts';
import type { ExpertRef, Interventions } from './types.ts';

export interface ResolvedInterventions {
  /** [Lm · E], or null when nothing is banned or forced. */
  readonly routeBias: Float32Array | null;
  readonly topK: number;
}

function bad(message: string): EngineError {
  return new EngineError(EngineErrorCode.BAD_INTERVENTION, message);
}

function moeSlots(cfg: ModelConfig, ref: ExpertRef): number[] {
  const E = cfg.moe.numExperts;
  if (!Number.isInteger(ref.expert) || ref.expert < 0 || ref.expert >= E) {
    throw bad(`expert ${ref.expert} does not exist (the model has experts 0..${E - 1})`);
  }
  if (ref.layer === 'all') return cfg.moeLayers.map((_, m) => m);
  const m = cfg.moeLayers.indexOf(ref.layer);
  if (m < 0) throw bad(`layer ${ref.layer} is not a MoE layer (MoE layers: ${cfg.moeLayers.join(', ')})`);
  return [m];
}

export function resolveInterventions(cfg: ModelConfig, iv: Interventions | undefined): ResolvedInterventions {
  const E = cfg.moe.numExperts;
  const topK = iv?.topK ?? cfg.moe.topK;
  if (!Number.isInteger(topK) || topK < 1 || topK > E) {
    throw new EngineError(EngineErrorCode.BAD_TOP_K, `top-k must be an integer from 1 to ${E} (the number of experts), got ${topK}`, { topK, experts: E });
  }
  // Group-limited routers choose only among the experts of their best topk_group groups.
  const routing = cfg.moe.routing;
  const groupSize = routing.kind === 'sigmoid_group_topk' ? E / routing.nGroup : E;
  const keptGroups = routing.kind === 'sigmoid_group_topk' ? routing.topkGroup : 1;
  if (topK > groupSize * keptGroups) {
    throw new EngineError(
      EngineErrorCode.BAD_TOP_K,
      `top-k must be an integer from 1 to ${groupSize * keptGroups} (this router picks from its best ${keptGroups} groups of ${groupSize} experts), got ${topK}`,
      { topK, experts: groupSize * keptGroups },
    );
  }
  const ban = iv?.ban ?? [];
  const force = iv?.force ?? [];
  if (ban.length === 0 && force.length === 0) return { routeBias: null, topK };

  const bias = new Float32Array(cfg.moeLayers.length * E);
  for (const ref of ban) for (const m of moeSlots(cfg, ref)) bias[m * E + ref.expert] = -Infinity;
  for (const ref of force) {
    for (const m of moeSlots(cfg, ref)) {
      if (bias[m * E + ref.expert] === -Infinity) throw bad(`expert ${ref.expert} is both banned and forced at layer ${cfg.moeLayers[m]}`);
      bias[m * E + ref.expert] = FORCE_BIAS;
    }
  }
  for (let m = 0; m < cfg.moeLayers.length; m++) {
    const row = bias.subarray(m * E, (m + 1) * E);
    const banned = row.filter((v) => v === -Infinity).length;
    const forced = row.filter((v) => v === FORCE_BIAS).length;
    if (E - banned < topK) throw bad(`layer ${cfg.moeLayers[m]}: ${banned} banned experts leave fewer than top-k = ${topK}`);
    if (forced > topK) throw bad(`layer ${cfg.moeLayers[m]}: ${forced} forced experts exceed top-k = ${topK}`);
    // A forced expert lifts its group into the kept ones; more forced groups than are kept cannot all be honoured.
    const forcedGroups = new Set<number>();
    row.forEach((v, e) => v === FORCE_BIAS && forcedGroups.add(Math.floor(e / groupSize)));
    if (forcedGroups.size > keptGroups) {
      throw bad(`layer ${cfg.moeLayers[m]}: the forced experts fall in ${forcedGroups.size} expert groups; this router keeps ${keptGroups} (groups of ${groupSize} experts)`);
    }
  }
  return { routeBias: bias, topK };
}

/** Parses the CLI form "L:E,L:E" (L may be '*' for every MoE layer). */
export function parseExpertList(spec: string): ExpertRef[] {
  return spec
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((part) => {
      const m = /^\s*(\*|\d+)\s*:\s*(\d+)\s*$/.exec(part);
      if (!m) throw bad(`'${part}' is not LAYER:EXPERT (e.g. 3:5, or *:5 for every MoE layer)`);
      return { layer: m[1] === '*' ? 'all' : Number(m[1]), expert: Number(m[2]) };
    });
}
