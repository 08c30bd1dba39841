/**
 * The standard analysis of a set of runs, as a JSON-able report and as text: per-layer load
 * balance, router entropy, consecutive-token agreement and co-activation against their random
 * baselines, cross-layer transitions, EPLB balancedness, and with a grouping field the experts
 * that dominate each group.
 */
import { AnalysisError, AnalysisErrorCode } from './errors.ts';
import {
  coactivation,
  coefficientOfVariation,
  consecutiveRates,
  contiguousPlacement,
  domainShare,
  eplbBalancedness,
  expertCounts,
  layerTransitions,
  loadShare,
  maxEntropy,
  maxOverMean,
  meanOf,
  randomCoactivation,
  randomDomainShare,
  randomLoadCv,
  randomOverlap,
  randomSameTop1,
  randomTransition,
  topKMass,
  topPairs,
  vocabularySpecialization,
} from './metrics/index.ts';
import { routingTable, type RoutingTable } from './table.ts';
import type { RunTrace } from './trace.ts';

export const ANALYSIS_FORMAT = 'moe-lab-analysis';

export interface AnalyzeOptions {
  /** Group positions by this field: a run field (e.g. `domain`), `phase`, `run_id` or `model_id`. */
  readonly by?: string;
  /** Devices for EPLB balancedness of the contiguous placement (E / D experts each). */
  readonly devices?: number;
  /** Pairs and experts listed per layer. */
  readonly top?: number;
  /** Minimum occurrences for vocabulary specialization (OLMoE uses 10). */
  readonly minTokenCount?: number;
}

/** null where a value is undefined for lack of data (JSON has no NaN). */
type Num = number | null;
const num = (x: number): Num => (Number.isFinite(x) ? x : null);

export interface LayerReport {
  readonly layer: number;
  readonly load: { readonly counts: number[]; readonly share: number[]; readonly cv: Num; readonly maxOverMean: Num; readonly randomCv: Num };
  readonly entropy: { readonly mean: Num; readonly normalized: Num } | null;
  readonly topKMass: Num;
  readonly consecutive: { readonly pairs: number; readonly sameTop1: Num; readonly anyOverlap: Num };
  /** `n`: the positions that chose i, on which P(j | i) rests. */
  readonly coactivation: { readonly i: number; readonly j: number; readonly p: number; readonly n: number }[];
  readonly vocabulary: { readonly tokens: number; readonly mean: Num; readonly top: { readonly tokenId: number; readonly count: number; readonly specialization: number; readonly expert: number }[] };
  readonly eplb: { readonly balancedness: Num; readonly deviceLoad: number[] } | null;
}

export interface GroupReport {
  /** The field's value; null for the runs that do not have the field. */
  readonly value: string | null;
  readonly runs: number;
  readonly positions: number;
  readonly layers: {
    readonly layer: number;
    /** max_e share_D(e); the random baseline is k / E. */
    readonly maxShare: number;
    /** Largest shares, with lift = share_D(e) / share over all groups. */
    readonly top: { readonly expert: number; readonly share: number; readonly lift: Num }[];
  }[];
  /** Largest max_e share_D(e) over layers. */
  readonly maxShare: number;
}

export interface AnalysisReport {
  readonly format: typeof ANALYSIS_FORMAT;
  readonly version: 1;
  readonly runs: number;
  readonly positions: number;
  readonly models: string[];
  readonly layers: number[];
  readonly numExperts: number;
  readonly k: number;
  readonly baselines: {
    readonly loadShare: number;
    readonly sameTop1: number;
    readonly anyOverlap: number;
    readonly coactivation: number;
    readonly domainShare: number;
    readonly transition: number;
    readonly maxEntropy: number;
  };
  readonly perLayer: LayerReport[];
  readonly transitions: { readonly from: number; readonly to: number; readonly top: { readonly i: number; readonly j: number; readonly p: number; readonly n: number; readonly lift: Num }[] }[];
  readonly eplb: { readonly devices: number; readonly overall: Num } | null;
  readonly by: { readonly field: string; readonly groups: GroupReport[] } | null;
}

/** Rows `rows` of a [n·width] array. */
function pick(a: Int32Array, rows: readonly number[], width: number): Int32Array {
  if (rows.length * width === a.length) return a;
  const out = new Int32Array(rows.length * width);
  rows.forEach((r, i) => out.set(a.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

/** Every `--by` value a set of runs offers. */
export function groupableFields(traces: readonly RunTrace[]): string[] {
  const fields = new Set<string>(['phase', 'run_id', 'model_id']);
  for (const t of traces) for (const f of Object.keys(t.meta.fields)) fields.add(f);
  return [...fields];
}

function groupsOf(traces: readonly RunTrace[], table: RoutingTable, by: string): { group: Int32Array; values: (string | null)[] } {
  if (!groupableFields(traces).includes(by)) {
    throw new AnalysisError(AnalysisErrorCode.UNKNOWN_FIELD, `no field '${by}' to group by; the trace has ${groupableFields(traces).join(', ')}`);
  }
  const values: (string | null)[] = [];
  const index = new Map<string | null, number>();
  const idOf = (v: string | null) => {
    let i = index.get(v);
    if (i === undefined) index.set(v, (i = values.push(v) - 1));
    return i;
  };
  const group = new Int32Array(table.n);
  const phaseAt = new Map<string, string>();
  if (by === 'phase') traces.forEach((t, ti) => t.routing.forEach((r) => phaseAt.set(`${ti}:${r.index}`, r.phase)));
  for (let p = 0; p < table.n; p++) {
    const t = traces[table.run[p]!]!;
    const v = by === 'phase' ? phaseAt.get(`${table.run[p]}:${table.position[p]}`)! : by === 'run_id' ? t.runId : by === 'model_id' ? t.modelId : (t.meta.fields[by] ?? null);
    group[p] = idOf(v);
  }
  return { group, values };
}

export function analyzeTraces(traces: readonly RunTrace[], opts: AnalyzeOptions = {}): AnalysisReport {
  const table = routingTable(traces);
  const { layers, numExperts: E, k, n } = table;
  const top = opts.top ?? 5;
  const placement = opts.devices ? contiguousPlacement(E, opts.devices) : null;
  const counts = table.ids.map((ids) => expertCounts(ids, E));
  const loadAll = new Float64Array(layers.length * E);
  counts.forEach((c, l) => loadAll.set(c, l * E));
  const eplb = placement ? eplbBalancedness(loadAll, layers.length, E, placement) : null;

  // Imports may lack token ids: vocabulary specialization uses the positions that have one.
  const knownTokens = [...table.tokenId.keys()].filter((p) => table.tokenId[p]! >= 0);

  const perLayer: LayerReport[] = layers.map((layer, l) => {
    const ids = table.ids[l]!;
    const c = counts[l]!;
    const cons = consecutiveRates(ids, k, table.run, table.position);
    const vocab = knownTokens.length > 0 ? vocabularySpecialization(pick(ids, knownTokens, k), k, E, pick(table.tokenId, knownTokens, 1), opts.minTokenCount ?? 10) : null;
    const vocabTop = vocab
      ? [...vocab.specialization.keys()]
          .sort((a, b) => vocab.specialization[b]! - vocab.specialization[a]! || vocab.counts[b]! - vocab.counts[a]!)
          .slice(0, top)
          .map((i) => ({ tokenId: vocab.tokenIds[i]!, count: vocab.counts[i]!, specialization: vocab.specialization[i]!, expert: vocab.topExpert[i]! }))
      : [];
    const h = table.entropy ? meanOf(table.entropy[l]!) : NaN;
    return {
      layer,
      load: { counts: [...c], share: [...loadShare(c)], cv: num(coefficientOfVariation(c)), maxOverMean: num(maxOverMean(c)), randomCv: num(randomLoadCv(E, k, n)) },
      entropy: table.entropy ? { mean: num(h), normalized: num(h / maxEntropy(E)) } : null,
      topKMass: table.selected ? num(meanOf(topKMass(table.selected[l]!, k))) : null,
      consecutive: { pairs: cons.pairs, sameTop1: num(cons.sameTop1), anyOverlap: num(cons.anyOverlap) },
      coactivation: topPairs(coactivation(ids, k, E), E, top).map((p) => ({ ...p, n: c[p.i]! })),
      vocabulary: { tokens: vocab?.tokenIds.length ?? 0, mean: vocab ? num(vocab.mean) : null, top: vocabTop },
      eplb: eplb && placement ? { balancedness: num(eplb.perLayer[l]!), deviceLoad: [...eplb.deviceLoad.subarray(l * placement.devices, (l + 1) * placement.devices)] } : null,
    };
  });

  const transitions = layers.slice(1).map((to, i) => {
    const m = layerTransitions(table.ids[i]!, table.ids[i + 1]!, k, E);
    const nextShare = counts[i + 1]!.map((x) => (n > 0 ? x / n : 0));
    return {
      from: layers[i]!,
      to,
      top: topPairs(m, E, top, true).map((p) => ({ ...p, n: counts[i]![p.i]!, lift: num(p.p / nextShare[p.j]!) })),
    };
  });

  let by: AnalysisReport['by'] = null;
  if (opts.by) {
    const { group, values } = groupsOf(traces, table, opts.by);
    const G = values.length;
    const shares = table.ids.map((ids) => domainShare(ids, k, E, group, G));
    const runsPer = values.map((_, g) => new Set([...table.run].filter((_, p) => group[p] === g)).size);
    by = {
      field: opts.by,
      groups: values.map((value, g) => {
        const perLayerG = layers.map((layer, l) => {
          const share = shares[l]!.share.subarray(g * E, (g + 1) * E);
          const overall = counts[l]!;
          const ranked = [...share.keys()].sort((a, b) => share[b]! - share[a]! || a - b);
          return {
            layer,
            maxShare: share[ranked[0]!]!,
            top: ranked.slice(0, top).map((e) => ({ expert: e, share: share[e]!, lift: num(share[e]! / (overall[e]! / n)) })),
          };
        });
        return { value, runs: runsPer[g]!, positions: shares[0]!.tokens[g]!, layers: perLayerG, maxShare: Math.max(...perLayerG.map((x) => x.maxShare)) };
      }),
    };
  }

  return {
    format: ANALYSIS_FORMAT,
    version: 1,
    runs: traces.length,
    positions: n,
    models: [...new Set(traces.map((t) => t.modelId))],
    layers: [...layers],
    numExperts: E,
    k,
    baselines: {
      loadShare: 1 / E,
      sameTop1: randomSameTop1(E),
      anyOverlap: randomOverlap(E, k),
      coactivation: randomCoactivation(E, k),
      domainShare: randomDomainShare(E, k),
      transition: randomTransition(E, k),
      maxEntropy: maxEntropy(E),
    },
    perLayer,
    transitions,
    eplb: eplb && placement ? { devices: placement.devices, overall: num(eplb.overall) } : null,
    by,
  };
}

// ---- text ------------------------------------------------------------------------------------

const pct = (x: Num) => (x === null ? '   -  ' : `${(x * 100).toFixed(1).padStart(5)}%`);
const fix = (x: Num, d = 3) => (x === null ? '-' : x.toFixed(d));

/** Right-aligned columns under a header, two spaces apart. */
function table(head: readonly string[], body: readonly (readonly string[])[]): string[] {
  const w = head.map((h, j) => Math.max(h.length, ...body.map((row) => row[j]!.length)));
  return [head, ...body].map((row) => '  ' + row.map((c, j) => c.padStart(w[j]!)).join('  '));
}

export function formatReport(r: AnalysisReport): string {
  const b = r.baselines;
  const out: string[] = [];
  out.push(`${r.runs} run(s), ${r.positions} routed positions; model ${r.models.join(', ')}; ${r.layers.length} MoE layers × ${r.numExperts} experts, top-${r.k}`);
  out.push('');
  const head = ['layer', 'load CV', '(random)', 'max/mean', 'entropy', '/ ln E', 'top-k mass', 'same top-1', 'any overlap'];
  const body = r.perLayer.map((l) => [
    String(l.layer),
    fix(l.load.cv),
    `(${fix(l.load.randomCv)})`,
    fix(l.load.maxOverMean, 2),
    l.entropy ? fix(l.entropy.mean) : '-',
    l.entropy ? pct(l.entropy.normalized).trim() : '-',
    pct(l.topKMass).trim(),
    pct(l.consecutive.sameTop1).trim(),
    pct(l.consecutive.anyOverlap).trim(),
  ]);
  out.push(...table(head, body));
  out.push(`  random baseline: same top-1 ${pct(b.sameTop1).trim()} (1/E), any overlap ${pct(b.anyOverlap).trim()} (1 − C(E−k,k)/C(E,k)), max entropy ln E = ${b.maxEntropy.toFixed(3)}`);
  out.push('');
  out.push(`co-activation P(j | i), top pairs (random: ${pct(b.coactivation).trim()})`);
  for (const l of r.perLayer) out.push(`  layer ${String(l.layer).padEnd(4)} ${l.coactivation.map((p) => `${p.i}→${p.j} ${pct(p.p).trim()} of ${p.n}`).join('   ') || '-'}`);
  if (r.transitions.length > 0) {
    out.push('');
    out.push(`cross-layer transitions P(j at next | i), top pairs (random: ${pct(b.transition).trim()})`);
    for (const t of r.transitions) out.push(`  ${t.from}→${t.to}  ${t.top.map((p) => `${p.i}→${p.j} ${pct(p.p).trim()} of ${p.n} (lift ${fix(p.lift, 2)})`).join('   ') || '-'}`);
  }
  const vocab = r.perLayer.filter((l) => l.vocabulary.tokens > 0);
  if (vocab.length > 0) {
    out.push('');
    out.push('vocabulary specialization (tokens seen ≥ 10 times): mean max_e N(x→e)/N(x)');
    for (const l of vocab) out.push(`  layer ${String(l.layer).padEnd(4)} ${pct(l.vocabulary.mean).trim()} over ${l.vocabulary.tokens} token ids`);
  }
  if (r.eplb) {
    out.push('');
    out.push(`EPLB balancedness on ${r.eplb.devices} devices (contiguous placement): ${fix(r.eplb.overall)}  ` + r.perLayer.map((l) => `L${l.layer} ${fix(l.eplb?.balancedness ?? null)}`).join('  '));
  }
  if (r.by) {
    out.push('');
    out.push(`specialization by ${r.by.field}: share_D(e) of the group's tokens routed to e (random: ${pct(b.domainShare).trim()} = k/E)`);
    for (const g of r.by.groups) {
      out.push(`  ${r.by.field} ${g.value === null ? 'not set' : `= ${JSON.stringify(g.value)}`}  (${g.runs} run(s), ${g.positions} positions), max share ${pct(g.maxShare).trim()}`);
      for (const l of g.layers) out.push(`    layer ${String(l.layer).padEnd(4)} ${l.top.map((e) => `expert ${e.expert} ${pct(e.share).trim()} (lift ${fix(e.lift, 2)})`).join('   ')}`);
    }
  }
  return out.join('\n') + '\n';
}
