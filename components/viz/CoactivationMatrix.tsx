'use client';

import { createCoactivation, type CoactivationProps } from './coactivation';
import { useRenderer } from './use-renderer';

export interface CoactivationMatrixViewProps extends CoactivationProps {
  readonly className?: string;
}

/** P(j | i) between experts chosen together, for one layer. */
export function CoactivationMatrix({ className, ...props }: CoactivationMatrixViewProps) {
  const ref = useRenderer(createCoactivation, props);
  return <div ref={ref} className={className ? `viz-host ${className}` : 'viz-host'} />;
}
