'use client';

import { createTokenStrip, type TokenStripProps } from './token-strip';
import { useRenderer } from './use-renderer';

export interface TokenStripViewProps extends TokenStripProps {
  readonly className?: string;
}

/** Tokens coloured by their top-1 expert at a chosen layer; hover or click for every layer's routing. */
export function TokenStrip({ className, ...props }: TokenStripViewProps) {
  const ref = useRenderer(createTokenStrip, props);
  return <div ref={ref} className={className ? `viz-host ${className}` : 'viz-host'} />;
}
