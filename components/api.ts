/**
 * The page's side of the REST API: an answer is either the body its schema describes or an error
 * with the server's code. Bodies are parsed, not trusted: a server of another version fails here with
 * CLIENT_BAD_MESSAGE instead of somewhere deep in a view.
 */
import type { z } from 'zod';
import { apiErrorSchema, describeIssue } from '../server/protocol';
import { ClientErrorCode } from './lab-client';

/** Throws `CODE: message` for an error answer (`HTTP status` when its body is not one of ours). */
export async function apiOk(res: Response): Promise<Response> {
  if (res.ok) return res;
  const body = apiErrorSchema.safeParse(await res.json().catch(() => null));
  throw new Error(body.success ? `${body.data.error.code}: ${body.data.error.message}` : `HTTP ${res.status}`);
}

/** The answer's body, checked against `schema`. */
export async function apiJson<T>(res: Response, schema: z.ZodType<T>): Promise<T> {
  const body: unknown = await (await apiOk(res)).json().catch(() => undefined);
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  throw new Error(`${ClientErrorCode.BAD_MESSAGE}: ${res.url || 'the server'} answered ${describeIssue(r.error)}`);
}
