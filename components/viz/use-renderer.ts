/**
 * React glue for the framework-free renderers: create once on mount, `update(props)` after every
 * render (renderers skip work when nothing they draw changed), `destroy()` on unmount.
 */
import { useEffect, useRef, type RefObject } from 'react';
import type { RunEvent } from '../../server/protocol';
import type { Renderer } from './renderer';
import { RunData } from './run-data';

export function useRenderer<P, R extends Renderer<P>>(factory: (container: HTMLElement, props: P) => R, props: P): RefObject<HTMLDivElement | null> {
  const ref = useRef<HTMLDivElement | null>(null);
  const renderer = useRef<R | null>(null);
  useEffect(() => {
    const host = ref.current;
    if (!host) return;
    // The props of the render that mounted us; later ones arrive through update().
    const r = factory(host, props);
    renderer.current = r;
    return () => {
      r.destroy();
      renderer.current = null;
    };
  }, [factory]);
  useEffect(() => {
    renderer.current?.update(props);
  });
  return ref;
}

/**
 * A RunData fed from a growing event list (as a run cache hands it out): only the events past the
 * ones already consumed are appended, so a streaming run costs O(new events) per render. A list that
 * shrank or starts with a different event (a restarted or different run) starts a new RunData.
 */
export function useRunData(events: readonly RunEvent[] | null | undefined): RunData | null {
  const state = useRef<{ data: RunData; consumed: number; head: RunEvent | undefined } | null>(null);
  if (!events) return null;
  let s = state.current;
  if (!s || events.length < s.consumed || (s.consumed > 0 && events[0] !== s.head)) {
    s = { data: new RunData(), consumed: 0, head: undefined };
    state.current = s;
  }
  if (events.length > s.consumed) {
    s.data.append(events.slice(s.consumed));
    s.consumed = events.length;
    s.head = events[0];
  }
  return s.data;
}
