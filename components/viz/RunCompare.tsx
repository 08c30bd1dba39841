'use client';

import { createCompare, type CompareProps } from './compare';
import { useRenderer } from './use-renderer';

export interface RunCompareViewProps extends CompareProps {
  readonly className?: string;
}

/** Two runs side by side: token differences and per-layer utilization difference. */
export function RunCompare({ className, ...props }: RunCompareViewProps) {
  const ref = useRenderer(createCompare, props);
  return <div ref={ref} className={className ? `viz-host ${className}` : 'viz-host'} />;
}
