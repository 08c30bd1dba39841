'use client';

import { createHeatmap, type HeatmapProps } from './heatmap';
import { useRenderer } from './use-renderer';

export interface ExpertHeatmapViewProps extends HeatmapProps {
  readonly className?: string;
}

/** Layer × expert utilization with per-layer load statistics, live while a run streams. */
export function ExpertHeatmap({ className, ...props }: ExpertHeatmapViewProps) {
  const ref = useRenderer(createHeatmap, props);
  return <div ref={ref} className={className ? `viz-host ${className}` : 'viz-host'} />;
}
