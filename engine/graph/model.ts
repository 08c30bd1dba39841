/**
 * The decoder forward pass as one ONNX graph: embeddings → L × (attention, MoE or dense MLP) →
 * final norm → logits, plus the routing each MoE layer used. The contract (names, shapes) is
 * documented in docs/engine.md; bump GRAPH_BUILDER_VERSION whenever it or the maths changes,
 * since cached graphs are keyed by it.
 */
import { ElemType, type GraphBuilder } from './builder.ts';
import type { ModelConfig } from '../checkpoint/config.ts';
import { attention } from './attention.ts';
import { mlaAttention } from './mla.ts';
import { linear, rmsNorm, ropeCosSin, storedMatrix, swigluMlp, transpose2d } from './layers.ts';
import { expertInitializers, moeExperts } from './moe.ts';
import { expertBits, toFloat16 } from './quant.ts';
import { buildRouting } from './routing.ts';
import { GLOBAL_NAMES, layerNames, type WeightSource } from './weights.ts';

export const GRAPH_BUILDER_VERSION = 10;

export interface GraphOptions {
  /** Emit topk_ids / topk_weights / router_logits. Off only to measure what capturing costs. */
  readonly routingOutputs: boolean;
}

// How weights are stored (float32 or block-quantized) is the builder's setting, `b.quant`: every
// matrix goes through `linear` or `expertInitializers`, which read it (int4 keeps the first MoE
// layers' experts at int8: quant.ts `expertBits`).

/** Graph input and output names, shared with the runner. */
export const IO = {
  inputIds: 'input_ids',
  positionIds: 'position_ids',
  pastMask: 'past_mask',
  pastKt: (l: number) => `past_kt.${l}`,
  pastV: (l: number) => `past_v.${l}`,
  logitIndex: 'logit_index',
  routeBias: 'route_bias',
  topK: 'top_k',
  logits: 'logits',
  presentKt: (l: number) => `present_kt.${l}`,
  presentV: (l: number) => `present_v.${l}`,
  topkIds: 'topk_ids',
  topkWeights: 'topk_weights',
  routerLogits: 'router_logits',
  topkIdsUnbiased: 'topk_ids_unbiased',
} as const;

/** Whether the graph reports the selection without the router's correction bias. */
export function hasUnbiasedIds(cfg: ModelConfig): boolean {
  return cfg.moe.routing.kind === 'sigmoid_group_topk' && cfg.moe.routing.correctionBias === true;
}

export function buildDecoderGraph(b: GraphBuilder, cfg: ModelConfig, w: WeightSource, opts: GraphOptions): void {
  const { hiddenSize: D, numKvHeads: Hkv, headDim: Dh, vHeadDim: Dv, ropeDim: Dr, vocabSize: V } = cfg;
  const E = cfg.moe.numExperts;
  const Lm = cfg.moeLayers.length;
  const G = cfg.numHeads / Hkv;

  // ---- inputs ---------------------------------------------------------------------------
  const inputIds = b.input(IO.inputIds, ElemType.int64, ['T']);
  const positionIds = b.input(IO.positionIds, ElemType.int64, ['T']);
  const pastMask = b.input(IO.pastMask, ElemType.float, ['C']);
  const logitIndex = b.input(IO.logitIndex, ElemType.int64, ['N']);
  const routeBias = b.input(IO.routeBias, ElemType.float, [Lm, E]);
  const topK = b.input(IO.topK, ElemType.int64, [1]);

  // ---- per-step constants: rotary cos/sin for these positions, causal mask among new tokens --
  const { cos, sin } = ropeCosSin(b, positionIds, Dr, cfg.ropeTheta, cfg.ropeScaling); // [T, 1, Dr] each
  const unsq1 = (x: string) => b.op('Unsqueeze', [x, b.constI64([1])]);

  const T = b.op('Squeeze', [b.op('Shape', [inputIds])]); // scalar
  const r = b.op('Range', [b.op('Squeeze', [b.constI64([0])]), T, b.op('Squeeze', [b.constI64([1])])]); // [T]
  const allowed = b.op('LessOrEqual', [b.op('Unsqueeze', [r, b.constI64([0])]), unsq1(r)]); // [T, T]: col ≤ row
  const causal = b.op('Where', [allowed, b.constF32(0), b.constF32(-Infinity)]); // [T, T]
  const causalMask = b.op('Tile', [causal, b.constI64([G, 1])]); // [G·T, T]

  // ---- embeddings ---------------------------------------------------------------------------
  // Quantized graphs keep the table in float16: a lookup reads one row, so it costs nothing per step.
  // (Read here and again for a tied output head, rather than held through every layer's conversion.)
  let x = b.quant
    ? b.op('Cast', [b.op('Gather', [b.initializer('embed.f16', toFloat16(w.read(GLOBAL_NAMES.embed, [V, D])), [V, D]), inputIds])], { to: ElemType.float }) // [T, D]
    : b.op('Gather', [b.initializer('embed', w.read(GLOBAL_NAMES.embed, [V, D]), [V, D]), inputIds]); // [T, D]
  // Multipliers of 1 are left out, so architectures without them get the same graph as before.
  const { embedding: embedMul, residual: residualMul, logitDivisor } = cfg.scaling;
  if (embedMul !== 1) x = b.mul(x, b.constF32(embedMul)); // [T, D]
  const residual = (branch: string) => (residualMul !== 1 ? b.mul(branch, b.constF32(residualMul)) : branch); // [T, D]

  const ids: string[] = [];
  const weights: string[] = [];
  const routerLogits: string[] = [];
  const unbiasedIds: string[] = [];

  // ---- decoder layers -----------------------------------------------------------------------
  for (let l = 0; l < cfg.numLayers; l++) {
    const names = layerNames(cfg, l);
    const pastKt = b.input(IO.pastKt(l), ElemType.float, [Hkv, Dh, 'C']);
    const pastV = b.input(IO.pastV(l), ElemType.float, [Hkv, 'C', Dv]);
    b.withScope(`layers.${l}`, () => {
      const h = rmsNorm(b, w, x, names.inputNorm, D, cfg.rmsNormEps);
      const a = b.withScope('attn', () => {
        const io = { x: h, cos, sin, pastKt, pastV, pastMask, causalMask };
        return cfg.attention.kind === 'mla'
          ? mlaAttention(b, w, cfg, cfg.attention, names.attn, io)
          : attention(b, w, cfg, cfg.attention, names.attn, io);
      });
      b.op('Identity', [a.newKt], {}, { names: [IO.presentKt(l)] });
      b.op('Identity', [a.newV], {}, { names: [IO.presentV(l)] });
      b.output(IO.presentKt(l), ElemType.float, [Hkv, Dh, 'T']);
      b.output(IO.presentV(l), ElemType.float, [Hkv, 'T', Dv]);
      x = b.add(x, residual(a.y)); // [T, D]

      const h2 = rmsNorm(b, w, x, names.postAttnNorm, D, cfg.rmsNormEps);
      const m = cfg.moeLayers.indexOf(l);
      let mlp: string;
      if (m < 0) {
        mlp = b.withScope('mlp', () => swigluMlp(b, w, h2, names.dense, D, cfg.denseIntermediate));
      } else {
        mlp = b.withScope('moe', () => {
          const F = cfg.moe.expertIntermediate;
          const z = linear(b, w, h2, names.router, D, E); // [T, E]
          const bias = b.op('Gather', [routeBias, b.op('Squeeze', [b.constI64([m])])], { axis: 0 }); // [E]
          // DeepSeek's correction bias is a weight of the router (selection only).
          const correction = hasUnbiasedIds(cfg) ? b.initializer(names.routerCorrection, w.read(names.routerCorrection, [E]), [E]) : undefined;
          const route = buildRouting(b, cfg.moe.routing, z, bias, topK, correction, opts.routingOutputs);
          const bits = b.quant && expertBits(b.quant, m, Lm);
          const experts = expertInitializers(b, w, names.experts, `layers.${l}.experts`, E, D, F, bits);
          let y = moeExperts(b, h2, route.ids, route.weights, experts, E, z); // [T, D]
          if (cfg.moe.shared) {
            const sh = swigluMlp(b, w, h2, names.shared, D, cfg.moe.shared.intermediate); // [T, D]
            const gate = cfg.moe.shared.gated ? b.op('Sigmoid', [linear(b, w, h2, names.sharedGate, D, 1)]) : null; // [T, 1]
            y = b.add(y, gate ? b.mul(gate, sh) : sh);
          }
          ids.push(route.ids); // [T, k] int64
          weights.push(route.weights); // [T, k]
          routerLogits.push(z); // [T, E]
          if (route.unbiasedIds) unbiasedIds.push(route.unbiasedIds); // [T, k] int64
          return y;
        });
      }
      x = b.add(x, residual(mlp)); // [T, D]
    });
  }

  // ---- head: only the positions the caller asks for ------------------------------------------
  const picked = b.op('Gather', [x, logitIndex], { axis: 0 }); // [N, D]
  const normed = rmsNorm(b, w, picked, GLOBAL_NAMES.finalNorm, D, cfg.rmsNormEps);
  const headT = transpose2d(w.read(cfg.tieWordEmbeddings ? GLOBAL_NAMES.embed : GLOBAL_NAMES.lmHead, [V, D]), V, D); // [D, V]
  const logits = b.matmul(normed, storedMatrix(b, 'lm_head.T', headT, [D, V])); // [N, V]
  if (logitDivisor !== 1) b.op('Div', [logits, b.constF32(logitDivisor)], {}, { names: [IO.logits] }); // [N, V]
  else b.rename(logits, IO.logits);
  b.output(IO.logits, ElemType.float, ['N', V]);

  // Routing leaves the graph as three outputs whatever the depth: each layer's router values joined
  // along the token axis ([Lm·T, k], no casts or reshapes), since every output costs a copy and a
  // tensor object per step, and the host reads them layer-major as [Lm, T, k] for free.
  if (opts.routingOutputs && Lm > 0) {
    b.op('Concat', ids, { axis: 0 }, { names: [IO.topkIds] }); // [Lm·T, k] int64
    b.op('Concat', weights, { axis: 0 }, { names: [IO.topkWeights] }); // [Lm·T, k]
    b.op('Concat', routerLogits, { axis: 0 }, { names: [IO.routerLogits] }); // [Lm·T, E]
    b.output(IO.topkIds, ElemType.int64, ['LT', 'K']);
    b.output(IO.topkWeights, ElemType.float, ['LT', 'K']);
    b.output(IO.routerLogits, ElemType.float, ['LT', E]);
    if (unbiasedIds.length > 0) {
      b.op('Concat', unbiasedIds, { axis: 0 }, { names: [IO.topkIdsUnbiased] }); // [Lm·T, k] int64
      b.output(IO.topkIdsUnbiased, ElemType.int64, ['LT', 'K']);
    }
  }
}
