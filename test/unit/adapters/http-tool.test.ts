/**
 * The HTTP tool adapter against a real HTTP server on 127.0.0.1 (an ephemeral
 * port): what it sends, and how each way an endpoint can answer (or not) maps to
 * a result, a retried fault or a tool error.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callHttpTool, HTTP_TOOL_ERROR_BODY_CHARS, type HttpCallContext } from '../../../lambdas/adapters/http-tool';
import type { HttpImplementation } from '../../../lambdas/core/define';
import { ConfigurationError, ToolError, TransientError } from '../../../lambdas/core/errors';
import { rejection } from '../support/rejection';

/** What the server saw of one request. */
interface Seen {
  readonly method: string;
  readonly url: URL;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void;

const SECRET = 'Bearer s3cr3t-token-value';
let server: Server;
let base: string;
let handler: Handler = (_req, res) => res.end();
const seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    // A connection per request: a pooled one the previous test's server side closed would fail the next.
    res.shouldKeepAlive = false;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: Seen = { method: req.method ?? '', url: new URL(req.url ?? '/', base), headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      seen.push(request);
      handler(req, res, request);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  seen.length = 0;
  // Responses a test left hanging (the timeout test) end here.
  server.closeAllConnections();
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const context: HttpCallContext = { idempotencyKey: 'tc_0123456789abcdef0123456789abcdef', timeoutMs: 2_000, toolName: 'search_web' };

const endpoint = (method: HttpImplementation['method'], path = '/v1/search'): HttpImplementation => ({
  url: `${base}${path}`,
  method,
  headers: { 'x-api-version': '1', authorization: SECRET },
});

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

/** The single request the server saw. */
const only = (): Seen => {
  expect(seen).toHaveLength(1);
  return seen[0] as Seen;
};

describe('callHttpTool', () => {
  it('POSTs the input as JSON with the idempotency key and the manifest headers, and returns the JSON answer', async () => {
    handler = (_req, res) => json(res, 200, { results: [{ title: 'a' }], total_count: 1 });
    const result = await callHttpTool(endpoint('POST'), { query: 'ssh brute force', max_results: 5 }, context);
    expect(result).toEqual({ results: [{ title: 'a' }], total_count: 1 });
    const request = only();
    expect(request.method).toBe('POST');
    expect(request.url.pathname).toBe('/v1/search');
    expect(JSON.parse(request.body)).toEqual({ query: 'ssh brute force', max_results: 5 });
    expect(request.headers['idempotency-key']).toBe(context.idempotencyKey);
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers['x-api-version']).toBe('1');
  });

  it('sends PUT and PATCH inputs as JSON bodies too', async () => {
    handler = (_req, res) => json(res, 201, { ok: true });
    await expect(callHttpTool(endpoint('PUT'), { id: 7 }, context)).resolves.toEqual({ ok: true });
    await expect(callHttpTool(endpoint('PATCH'), { id: 8 }, context)).resolves.toEqual({ ok: true });
    expect(seen.map((s) => [s.method, s.body])).toEqual([
      ['PUT', '{"id":7}'],
      ['PATCH', '{"id":8}'],
    ]);
  });

  it('GETs with the top-level scalar fields as query parameters, keeping those of the URL', async () => {
    handler = (_req, res) => json(res, 200, { alerts: [] });
    const result = await callHttpTool(endpoint('GET', '/v2/alerts?state=open'), { service: 'ssh', limit: 10, verbose: false, cursor: null }, context);
    expect(result).toEqual({ alerts: [] });
    const request = only();
    expect(request.method).toBe('GET');
    expect(request.body).toBe('');
    expect([...request.url.searchParams]).toEqual([
      ['state', 'open'],
      ['service', 'ssh'],
      ['limit', '10'],
      ['verbose', 'false'],
    ]);
    expect(request.headers['idempotency-key']).toBe(context.idempotencyKey);
  });

  it('sends DELETE input as query parameters', async () => {
    handler = (_req, res) => json(res, 200, { deleted: true });
    await expect(callHttpTool(endpoint('DELETE', '/v1/rules'), { id: 'r-1' }, context)).resolves.toEqual({ deleted: true });
    expect(only().url.search).toBe('?id=r-1');
  });

  it('fails with a ToolError when a GET input field is an object, without sending anything', async () => {
    const err = await rejection(callHttpTool(endpoint('GET'), { filter: { since: 'today' } }, context));
    expect(err).toBeInstanceOf(ToolError);
    expect(err.message).toContain('"filter"');
    expect(seen).toHaveLength(0);
  });

  it('returns null for 204 No Content', async () => {
    handler = (_req, res) => {
      res.writeHead(204);
      res.end();
    };
    await expect(callHttpTool(endpoint('POST'), {}, context)).resolves.toBeNull();
  });

  it('fails with a ToolError quoting the status and at most 500 characters of the body on 400', async () => {
    const detail = `query is too long: ${'x'.repeat(2_000)}`;
    handler = (_req, res) => json(res, 400, { error: detail });
    const err = await rejection(callHttpTool(endpoint('POST'), { query: 'q' }, context));
    expect(err).toBeInstanceOf(ToolError);
    expect(err.name).toBe('ToolError');
    expect(err.message).toContain('search_web');
    expect(err.message).toContain('400 Bad Request');
    expect(err.message).toContain('{"error":"query is too long: xxx');
    expect(err.message.length).toBeLessThan(HTTP_TOOL_ERROR_BODY_CHARS + 100);
    expect(err.message).not.toContain(SECRET);
  });

  it('fails with a ToolError on 404 and 422 (the model can change its call)', async () => {
    handler = (_req, res) => json(res, 404, { error: 'no such index' });
    await expect(callHttpTool(endpoint('GET'), {}, context)).rejects.toThrow(ToolError);
    handler = (_req, res) => json(res, 422, { error: 'bad field' });
    const err = await rejection(callHttpTool(endpoint('POST'), {}, context));
    expect(err).toBeInstanceOf(ToolError);
    expect(err.message).toContain('422');
  });

  it('fails with a TransientError naming the tool, the status and the Retry-After value on 429', async () => {
    handler = (_req, res) => json(res, 429, { error: 'slow down' }, { 'retry-after': '7' });
    const err = await rejection(callHttpTool(endpoint('POST'), { query: 'q' }, context));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.name).toBe('TransientError');
    expect(err.message).toContain('search_web');
    expect(err.message).toContain('429');
    expect(err.message).toContain('Retry-After: 7');
    expect(err.message).not.toContain(SECRET);
  });

  it('quotes Retry-After on 503', async () => {
    handler = (_req, res) => json(res, 503, {}, { 'retry-after': 'Wed, 21 Oct 2037 07:28:00 GMT' });
    const err = await rejection(callHttpTool(endpoint('GET'), {}, context));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain('503');
    expect(err.message).toContain('Retry-After: Wed, 21 Oct 2037 07:28:00 GMT');
  });

  it('fails with a TransientError on 500', async () => {
    handler = (_req, res) => json(res, 500, { error: 'boom' });
    const err = await rejection(callHttpTool(endpoint('POST'), { query: 'q' }, context));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toMatch(/^search_web: POST http:\/\/127\.0\.0\.1:\d+: answered 500 Internal Server Error$/);
  });

  it('keeps the URL path and query out of fault messages (they may hold a secret)', async () => {
    handler = (_req, res) => json(res, 502, {});
    const err = await rejection(callHttpTool({ url: `${base}/hooks/T0-s3cr3t-path?token=s3cr3t-query`, method: 'POST' }, {}, context));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).not.toContain('s3cr3t');
  });

  it('sets content-type and Idempotency-Key over headers of the same name', async () => {
    handler = (_req, res) => json(res, 200, {});
    await callHttpTool({ url: base, method: 'POST', headers: { 'Content-Type': 'text/plain', 'Idempotency-Key': 'fixed' } }, {}, context);
    const { headers } = only();
    expect(headers['content-type']).toBe('application/json');
    expect(headers['idempotency-key']).toBe(context.idempotencyKey);
  });

  it('fails with a TransientError when the answer does not come before the timeout', async () => {
    handler = (_req, res) => {
      setTimeout(() => json(res, 200, { late: true }), 3_000).unref();
    };
    const started = Date.now();
    const err = await rejection(callHttpTool(endpoint('POST'), { query: 'q' }, { ...context, timeoutMs: 200 }));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain('timed out after 200 ms');
  });

  it('fails with a TransientError when the body stalls past the timeout', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"results": [');
    };
    const err = await rejection(callHttpTool(endpoint('POST'), {}, { ...context, timeoutMs: 300 }));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain('timed out');
  });

  it('fails with a TransientError when the connection is dropped', async () => {
    handler = (req) => req.socket.destroy();
    const err = await rejection(callHttpTool(endpoint('POST'), { query: 'q' }, context));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain('search_web');
    expect(err.message).toContain('failed');
    expect(err.message).not.toContain(SECRET);
  });

  it('fails with a TransientError when the connection is refused', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const err = await rejection(callHttpTool({ url: `http://127.0.0.1:${port}/x`, method: 'POST' }, {}, context));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('fails with a TransientError when a 2xx body is cut off', async () => {
    handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"results": [{"title": "a"');
      setTimeout(() => req.socket.destroy(), 20);
    };
    const err = await rejection(callHttpTool(endpoint('POST'), { query: 'q' }, context));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain('answered 200 OK, then the body was cut off');
  });

  it('fails with a TransientError when a complete 2xx body is not JSON', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"results": [');
    };
    const err = await rejection(callHttpTool(endpoint('POST'), {}, context));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toContain('not JSON');
  });

  it('fails with a ConfigurationError on a malformed URL, without a request', async () => {
    const err = await rejection(callHttpTool({ url: 'not a url', method: 'POST' }, {}, context));
    expect(err).toBeInstanceOf(ConfigurationError);
  });
});
