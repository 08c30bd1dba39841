/** Routing visualizations: framework-free renderers, their React wrappers, and the data they read. */
export { VizView, VIZ_KINDS, type VizKind, type VizViewProps } from './VizView';
export { TokenStrip, type TokenStripViewProps } from './TokenStrip';
export { RoutingGrid, type RoutingGridViewProps } from './RoutingGrid';
export { ExpertHeatmap, type ExpertHeatmapViewProps } from './ExpertHeatmap';
export { LatencyTrace, type LatencyTraceViewProps } from './LatencyTrace';
export { CoactivationMatrix, type CoactivationMatrixViewProps } from './CoactivationMatrix';
export { RunCompare, type RunCompareViewProps } from './RunCompare';
export { useRenderer, useRunData } from './use-renderer';

export { RunData, type StepTiming, type RoutingShape } from './run-data';
export type { Renderer } from './renderer';
export { createTokenStrip, type TokenStripProps, type TokenStripRenderer } from './token-strip';
export { createRoutingGrid, type RoutingGridProps, type RoutingGridRenderer, type GridMode } from './routing-grid';
export { createHeatmap, type HeatmapProps, type HeatmapRenderer, type HeatmapMode, type DrawnCounts } from './heatmap';
export { createLatency, type LatencyProps, type LatencyRenderer } from './latency';
export { createCoactivation, type CoactivationProps, type CoactivationRenderer } from './coactivation';
export { createCompare, type CompareProps, type CompareRenderer } from './compare';
export type { LatencyProfile, ProfileStep, LayerTiming, LoadStats } from './stats';
export { syntheticTrace, type SyntheticOptions } from './synthetic';
export { BASE_PALETTE, expertCss, expertRgb } from './palette';
