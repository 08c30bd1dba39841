/** The routing metrics, each a pure function documented with its formula and source. */
export * from './load.ts';
export * from './router.ts';
export * from './specialization.ts';
export * from './coactivation.ts';
export * from './consecutive.ts';
export * from './transitions.ts';
export * from './eplb.ts';
