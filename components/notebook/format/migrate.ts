/**
 * Upgrades documents written by older MoE Lab versions, one format_version step at a time, on
 * the raw parsed JSON (an old document does not fit today's schema, so it cannot be validated
 * first). Every step must accept anything and leave what it does not recognise for the schema
 * to reject afterwards.
 *
 * To change the format: bump FORMAT_VERSION (schema.ts), append the step from the previous
 * version here, and add a test that loads a document of the old shape.
 */
import { NotebookFormatError, NotebookFormatErrorCode, invalid } from './errors';
import { isPlainObject } from './json';
import { FORMAT_VERSION } from './schema';

type RawDoc = Record<string, unknown>;
type Migration = (doc: RawDoc) => RawDoc;

/** Copies `doc` with `metadata.moelab` replaced by `fn` of the old one. */
function withMoelabMeta(doc: RawDoc, fn: (meta: Record<string, unknown>) => Record<string, unknown>): RawDoc {
  const metadata = isPlainObject(doc.metadata) ? doc.metadata : {};
  const moelab = isPlainObject(metadata.moelab) ? metadata.moelab : {};
  return { ...doc, metadata: { ...metadata, moelab: fn(moelab) } };
}

/**
 * v0 → v1. Version 0 named the notebook's model by id alone (`model: "some-model"`, or null);
 * version 1 pins it as `{ id, hash }` so a reopened notebook can tell the weights changed. The
 * hash of a v0 file is unknown, hence null.
 */
const v0ToV1: Migration = (doc) =>
  withMoelabMeta(doc, (meta) => {
    const model = meta.model;
    const next = typeof model === 'string' ? (model === '' ? null : { id: model, hash: null }) : model === undefined ? null : model;
    return { ...meta, model: next, format_version: 1 };
  });

/** MIGRATIONS[v] turns a version-v document into a version-(v+1) one. */
export const MIGRATIONS: readonly Migration[] = [v0ToV1];

/** The format_version a raw document declares; refuses documents that are not MoE Lab notebooks. */
export function formatVersionOf(doc: unknown): number {
  const meta = isPlainObject(doc) && isPlainObject(doc.metadata) && isPlainObject(doc.metadata.moelab) ? doc.metadata.moelab : null;
  if (meta === null) throw invalid('not a MoE Lab notebook: metadata.moelab is missing');
  const v = meta.format_version;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw invalid('metadata.moelab.format_version must be a non-negative integer', { formatVersion: String(v) });
  }
  return v;
}

/** Brings a raw document up to FORMAT_VERSION; `from` is the version it was written in. */
export function migrate(doc: unknown): { doc: unknown; from: number } {
  const from = formatVersionOf(doc);
  if (from > FORMAT_VERSION) {
    throw new NotebookFormatError(
      NotebookFormatErrorCode.TOO_NEW,
      `this notebook was written by a newer MoE Lab (format version ${from}; this version reads up to ${FORMAT_VERSION})`,
      { formatVersion: from, supported: FORMAT_VERSION },
    );
  }
  let current = doc as RawDoc;
  for (let v = from; v < FORMAT_VERSION; v++) current = MIGRATIONS[v]!(current);
  return { doc: current, from };
}
