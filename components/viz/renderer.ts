/**
 * The contract every view follows: created once on a container, updated with new props, destroyed
 * on unmount. Views are plain DOM/canvas code, so they can be driven without React (benchmarks,
 * browser tests) and the React wrappers stay trivial.
 */
export interface Renderer<P> {
  update(props: P): void;
  destroy(): void;
}

export type RendererFactory<P, R extends Renderer<P> = Renderer<P>> = (container: HTMLElement, props: P) => R;

/**
 * Coalesces any number of `schedule()` calls into one `draw` on the next animation frame, so a burst
 * of streamed events costs one redraw. Falls back to a timer where there is no animation frame.
 */
export interface FrameScheduler {
  schedule(): void;
  /** Draws now if a frame is pending (for callers that need the result synchronously). */
  flush(): void;
  cancel(): void;
}

export function frameScheduler(draw: () => void): FrameScheduler {
  let handle: number | null = null;
  const raf = typeof requestAnimationFrame === 'function';
  const run = () => {
    handle = null;
    draw();
  };
  const cancel = () => {
    if (handle === null) return;
    if (raf) cancelAnimationFrame(handle);
    else clearTimeout(handle);
    handle = null;
  };
  return {
    schedule() {
      if (handle !== null) return;
      handle = raf ? requestAnimationFrame(run) : (setTimeout(run, 16) as unknown as number);
    },
    flush() {
      if (handle === null) return;
      cancel();
      draw();
    },
    cancel,
  };
}
