'use client';

import { createRoutingGrid, type RoutingGridProps } from './routing-grid';
import { useRenderer } from './use-renderer';

export interface RoutingGridViewProps extends RoutingGridProps {
  readonly className?: string;
}

/** Token × layer grid of expert choices, virtualized; click a cell to pin its details. */
export function RoutingGrid({ className, ...props }: RoutingGridViewProps) {
  const ref = useRenderer(createRoutingGrid, props);
  return <div ref={ref} className={className ? `viz-host ${className}` : 'viz-host'} />;
}
