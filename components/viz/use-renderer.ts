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

interface Feed {
  readonly data: RunData;
  consumed: number;
  head: RunEvent | undefined;
}

/**
 * One RunData per event list, shared by every view of the run: a run shown in five views used to hold
 * five copies (a DeepSeek-sized 1k-token run's router distributions alone are about 59 MiB each).
 * Keyed by the list itself, which the run cache grows in place, so it goes when the list does.
 */
const feeds = new WeakMap<readonly RunEvent[], Feed>();

/**
 * The RunData of a growing event list (as a run cache hands it out): only the events past the ones
 * already consumed are appended, so a streaming run costs O(new events) per render, once for all its
 * views. A list that shrank or starts with a different event (a restarted or different run) starts a
 * new RunData.
 */
export function runDataFor(events: readonly RunEvent[]): RunData {
  let f = feeds.get(events);
  if (!f || events.length < f.consumed || (f.consumed > 0 && events[0] !== f.head)) {
    f = { data: new RunData(), consumed: 0, head: undefined };
    feeds.set(events, f);
  }
  if (events.length > f.consumed) {
    f.data.append(events.slice(f.consumed));
    f.consumed = events.length;
    f.head = events[0];
  }
  return f.data;
}

/** runDataFor as a hook, for views that may have no run yet. */
export function useRunData(events: readonly RunEvent[] | null | undefined): RunData | null {
  return events ? runDataFor(events) : null;
}
