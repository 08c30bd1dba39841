'use client';

/** One view of a run, picked by kind: what a notebook cell or a page embeds. */
import type { RunEvent } from '../../server/protocol';
import { CoactivationMatrix } from './CoactivationMatrix';
import { ExpertHeatmap } from './ExpertHeatmap';
import { LatencyTrace } from './LatencyTrace';
import { RoutingGrid } from './RoutingGrid';
import { RunCompare } from './RunCompare';
import type { RunData } from './run-data';
import type { LatencyProfile } from './stats';
import { TokenStrip } from './TokenStrip';
import { useRunData } from './use-renderer';

export type VizKind = 'token-strip' | 'routing-grid' | 'heatmap' | 'latency' | 'coactivation' | 'compare';

export const VIZ_KINDS: readonly VizKind[] = ['token-strip', 'routing-grid', 'heatmap', 'latency', 'coactivation', 'compare'];

export interface VizViewProps {
  readonly kind: VizKind;
  /** The run, either as a RunData you feed yourself … */
  readonly data?: RunData | null;
  /** … or as its growing event list (consumed incrementally). */
  readonly events?: readonly RunEvent[] | null;
  /** Bumped by the owner when `events` grew; only used to re-render. */
  readonly version?: number;
  /** Run B of a comparison (kind 'compare'). */
  readonly compareData?: RunData | null;
  readonly compareEvents?: readonly RunEvent[] | null;
  readonly compareVersion?: number;
  readonly labelA?: string;
  readonly labelB?: string;
  /** Diagnostic-mode profile for the latency view. */
  readonly profile?: LatencyProfile | null;
  readonly className?: string;
}

export function VizView(props: VizViewProps) {
  const fed = useRunData(props.data ? null : props.events);
  const fedB = useRunData(props.compareData ? null : props.compareEvents);
  const data = props.data ?? fed;
  // A second run with nothing in it yet (still loading, or missing) is no run to compare with.
  const otherData = props.compareData ?? fedB;
  const other = otherData && otherData.length > 0 ? otherData : null;
  if (!data) return <div className="viz-empty">No run to show.</div>;
  const className = props.className;
  switch (props.kind) {
    case 'token-strip':
      return <TokenStrip data={data} className={className} />;
    case 'routing-grid':
      return <RoutingGrid data={data} className={className} />;
    case 'heatmap':
      return <ExpertHeatmap data={data} className={className} />;
    case 'latency':
      return <LatencyTrace data={data} profile={props.profile ?? null} className={className} />;
    case 'coactivation':
      return <CoactivationMatrix data={data} className={className} />;
    case 'compare':
      return <RunCompare a={data} b={other} labelA={props.labelA} labelB={props.labelB} className={className} />;
    default: {
      const never: never = props.kind;
      return <div className="viz-empty">Unknown view {String(never)}.</div>;
    }
  }
}
