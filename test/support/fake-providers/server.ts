/**
 * A local fake of a model provider's HTTP API, on 127.0.0.1: the real SDK clients
 * talk to it over HTTP. Each provider module (`anthropic.ts`, `openai.ts`,
 * `bedrock.ts`) encodes the runtime's responses and faults in that provider's wire
 * format; this server only delivers replies, with the faults the suites inject:
 * a status and headers, a raw (malformed or truncated) body, a delay, or a dropped connection.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the fake received it (body parsed as JSON when it is). */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
  /** When it arrived, ms since the epoch. */
  readonly at: number;
}

/** What the fake sends back. */
export interface FakeReply {
  /** @default 200 */
  readonly status?: number;
  readonly headers?: Record<string, string>;
  /** A JSON body (serialised). */
  readonly body?: unknown;
  /** A raw body instead of `body`: malformed or truncated JSON. */
  readonly raw?: string;
  /** Wait this long before answering (a slow provider). */
  readonly delayMs?: number;
  /**
   * Drop the connection: `before-headers` destroys the socket without an answer;
   * `mid-body` sends the headers and part of the body, then destroys the socket.
   */
  readonly drop?: 'before-headers' | 'mid-body';
}

/** Decides the reply to a request. */
export type FakeHandler = (request: RecordedRequest) => FakeReply | Promise<FakeReply>;

/** A running fake. */
export interface FakeServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Replaces the handler (e.g. to inject a fault mid-run). */
  setHandler(handler: FakeHandler): void;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/**
 * Starts a fake on 127.0.0.1. @param port 0 (the default) picks a free port.
 * @throws when the port is taken.
 */
export async function startFakeServer(handler: FakeHandler, port = 0): Promise<FakeServer> {
  let current = handler;
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    void answer(req, res);
  });
  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = text;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: kept as text
    }
    const recorded: RecordedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body, at: Date.now() };
    requests.push(recorded);
    let reply: FakeReply;
    try {
      reply = await current(recorded);
    } catch (error) {
      reply = { status: 500, body: { error: { type: 'fake_server_error', message: String(error) } } };
    }
    if (reply.delayMs) await new Promise((resolve) => setTimeout(resolve, reply.delayMs));
    if (res.destroyed) return;
    if (reply.drop === 'before-headers') {
      req.socket.destroy();
      return;
    }
    const payload = reply.raw ?? (reply.body === undefined ? '' : JSON.stringify(reply.body));
    res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
    if (reply.drop === 'mid-body') {
      res.write(payload.slice(0, Math.max(1, Math.floor(payload.length / 2))));
      setTimeout(() => req.socket.destroy(), 10);
      return;
    }
    res.end(payload);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    requests,
    setHandler: (next) => {
      current = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The number of assistant messages in a request body's `messages` (the scripted turn to play). */
export function assistantTurns(body: unknown): number {
  const messages = (body as { messages?: { role?: string }[] } | undefined)?.messages ?? [];
  return messages.filter((m) => m.role === 'assistant').length;
}
