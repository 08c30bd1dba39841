'use client';

import { createLatency, type LatencyProps } from './latency';
import { useRenderer } from './use-renderer';

export interface LatencyTraceViewProps extends LatencyProps {
  readonly className?: string;
}

/** Per-token time, TTFT and tokens/s, and the per-layer breakdown of a profiled run. */
export function LatencyTrace({ className, ...props }: LatencyTraceViewProps) {
  const ref = useRenderer(createLatency, props);
  return <div ref={ref} className={className ? `viz-host ${className}` : 'viz-host'} />;
}
