/**
 * Access control, closed by default:
 * - a 256-bit token, printed once in the start URL, compared in constant time;
 * - a browser exchanges it (GET /?token=…) for an HttpOnly, SameSite=Strict session cookie;
 * - scripts and the CLI send `Authorization: Bearer TOKEN` and may omit Origin;
 * - a request carrying an Origin must match the allowlist exactly (scheme, host, port) whatever its
 *   token: no `null`, no prefix or suffix matches;
 * - the Host header must be one the server answers to (defeats DNS rebinding).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { hostname, networkInterfaces } from 'node:os';

/**
 * Cookies are not scoped by port, so each server names its session cookie after its port: two
 * servers on one machine (an app and an engine-only server, say) keep separate sessions.
 */
export function sessionCookieName(port: number): string {
  return `moelab_session_${port}`;
}

export function newToken(): string {
  return randomBytes(32).toString('hex');
}

/** Constant-time string comparison (the length of the expected value is not secret). */
export function safeEqual(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  if (a.length !== b.length) {
    timingSafeEqual(b, b);
    return false;
  }
  return timingSafeEqual(a, b);
}

export interface AccessPolicy {
  readonly token: string;
  /** Secret carried by the session cookie (distinct from the token, so the cookie never leaks it). */
  readonly session: string;
  readonly allowedHosts: ReadonlySet<string>;
  readonly allowedOrigins: ReadonlySet<string>;
  readonly cookieName: string;
}

/** Hosts and origins a server on `host:port` answers to. */
export function accessPolicy(host: string, port: number, extraOrigins: readonly string[] = [], token = newToken()): AccessPolicy {
  const names = new Set(['127.0.0.1', 'localhost', '[::1]']);
  const bracket = (h: string) => (h.includes(':') ? `[${h}]` : h);
  if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') names.add(bracket(host));
  // A wildcard address listens on every interface: clients name the machine by one of its own
  // addresses or its host name, so those (and only those) are the hosts it answers to.
  if (host === '0.0.0.0' || host === '::') {
    names.add(hostname().toLowerCase());
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.address.includes('%')) names.add(bracket(a.address.toLowerCase()));
  }
  const allowedHosts = new Set([...names].map((n) => `${n}:${port}`));
  const allowedOrigins = new Set([...[...names].map((n) => `http://${n}:${port}`), ...extraOrigins]);
  return { token, session: newToken(), allowedHosts, allowedOrigins, cookieName: sessionCookieName(port) };
}

export function hostAllowed(p: AccessPolicy, req: IncomingMessage): boolean {
  const host = req.headers.host;
  return typeof host === 'string' && p.allowedHosts.has(host.toLowerCase());
}

/** No Origin header (non-browser client) is allowed; any Origin present must be on the list. */
export function originAllowed(p: AccessPolicy, req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  return typeof origin === 'string' && p.allowedOrigins.has(origin);
}

export function cookieValue(req: IncomingMessage, name: string): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export function authenticated(p: AccessPolicy, req: IncomingMessage): boolean {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return safeEqual(auth.slice(7).trim(), p.token);
  const cookie = cookieValue(req, p.cookieName);
  return cookie !== null && safeEqual(cookie, p.session);
}

export function sessionCookie(p: AccessPolicy): string {
  return `${p.cookieName}=${p.session}; HttpOnly; SameSite=Strict; Path=/`;
}

/** Headers on every HTTP response. */
export function securityHeaders(wsOrigins: readonly string[]): Record<string, string> {
  const connect = ["'self'", ...wsOrigins].join(' ');
  return {
    'Content-Security-Policy': [
      "default-src 'self'",
      // The app's pages carry small inline bootstrap scripts; everything else loads from this server.
      "script-src 'self' 'unsafe-inline'",
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data: blob:",
      "font-src 'self' data:",
      `connect-src ${connect}`,
      "worker-src 'self' blob:",
      "object-src 'none'",
      "base-uri 'self'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join('; '),
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'Cross-Origin-Opener-Policy': 'same-origin',
  };
}
