/**
 * The Anthropic adapter through the real SDK, over HTTP, against the fake provider
 * server on 127.0.0.1: the request and response mapping, and each fault as the
 * router sees it (`ModelProviderError` kind, retryability, status, Retry-After, request id).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AnthropicProvider } from '../../../../lambdas/adapters/providers/anthropic';
import type { Message, ModelRequest, ModelResponse, StopReason } from '../../../../lambdas/core/contracts/model';
import type { ScriptedConversation } from '../../../../lambdas/core/contracts/scripted';
import { ModelProviderError, type ProviderFaultKind } from '../../../../lambdas/core/errors';
import { anthropicError, anthropicResponse, scriptedAnthropicHandler } from '../../../support/fake-providers/anthropic';
import { startFakeServer, type FakeReply, type FakeServer } from '../../../support/fake-providers/server';
import { rejection } from '../../support/rejection';

const API_KEY = 'sk-ant-unit-0123456789abcdef';
const MODEL = 'claude-x';
const REPORTED_MODEL = 'claude-x-20250929';
const usage = { inputTokens: 120, outputTokens: 14 };

const USER: Message = { role: 'user', content: [{ type: 'text', text: 'Investigate finding 42.' }] };
const REQUEST: ModelRequest = { modelId: MODEL, system: 'You investigate findings.', messages: [USER], tools: [] };

let server: FakeServer;

beforeAll(async () => {
  server = await startFakeServer(() => anthropicError(500, 'api_error', 'no handler set'));
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
});

function provider(options: { timeoutMs?: number; apiKey?: () => Promise<string>; baseUrl?: string } = {}): AnthropicProvider {
  return new AnthropicProvider({ baseUrl: options.baseUrl ?? server.url, apiKey: options.apiKey ?? (async () => API_KEY), timeoutMs: options.timeoutMs ?? 5_000 });
}

/** Answers every request with `reply`, calls the provider once and returns its answer. */
async function answer(reply: FakeReply, request: ModelRequest = REQUEST): Promise<ModelResponse> {
  server.setHandler(() => reply);
  return provider().converse(request);
}

/** Answers every request with `reply` and returns the provider's error, checking that the SDK sent one request only. */
async function fault(reply: FakeReply, options: { timeoutMs?: number } = {}): Promise<ModelProviderError> {
  server.setHandler(() => reply);
  const error = await rejection(provider(options).converse(REQUEST));
  expect(error).toBeInstanceOf(ModelProviderError);
  expect(server.requests).toHaveLength(1);
  expect(error.message).not.toContain(API_KEY);
  expect(error.message).not.toContain('Investigate finding 42');
  return error as ModelProviderError;
}

/** The fields of a provider error the router acts on. */
function factsOf(error: ModelProviderError): Record<string, unknown> {
  const { provider: name, modelId, kind, retryable, status, retryAfterMs, requestId } = error;
  return { provider: name, modelId, kind, retryable, status, retryAfterMs, requestId };
}

function expectedFacts(kind: ProviderFaultKind, retryable: boolean, extra: { status?: number; retryAfterMs?: number; requestId?: string } = {}): Record<string, unknown> {
  return { provider: 'anthropic', modelId: MODEL, kind, retryable, status: extra.status, retryAfterMs: extra.retryAfterMs, requestId: extra.requestId };
}

const VALID_BODY = {
  id: 'msg_ok',
  type: 'message',
  role: 'assistant',
  model: REPORTED_MODEL,
  content: [{ type: 'text', text: 'Finding 42 is benign.' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 10, output_tokens: 5 },
};

describe('AnthropicProvider: answers', () => {
  it('maps a plain text answer, with the model and request id as Anthropic reports them', async () => {
    const content = [{ type: 'text' as const, text: 'Finding 42 is benign.' }];
    const response = await answer(anthropicResponse({ content, stopReason: 'end_turn', usage }, REPORTED_MODEL, 'msg_01'));
    expect(response).toEqual({ content, stopReason: 'end_turn', usage, modelId: REPORTED_MODEL, requestId: 'req_msg_01' });
    expect(provider().name).toBe('anthropic');
  });

  it('maps one tool call', async () => {
    const content = [{ type: 'tool_use' as const, id: 'toolu_01', name: 'count_failed_attempts', input: { user: 'alice', hours: 24 } }];
    const response = await answer(anthropicResponse({ content, stopReason: 'tool_use', usage }, REPORTED_MODEL));
    expect(response.content).toEqual(content);
    expect(response.stopReason).toBe('tool_use');
    expect(response.providerStopReason).toBeUndefined();
  });

  it('maps several tool calls in one answer, with the text before them, in order', async () => {
    const content = [
      { type: 'text' as const, text: 'Checking both sources.' },
      { type: 'tool_use' as const, id: 'toolu_01', name: 'lookup_ip', input: { ip: '10.0.0.1' } },
      { type: 'tool_use' as const, id: 'toolu_02', name: 'count_failed_attempts', input: {} },
    ];
    const response = await answer(anthropicResponse({ content, stopReason: 'tool_use', usage }, REPORTED_MODEL));
    expect(response.content).toEqual(content);
  });

  it.each<[string, StopReason, string | undefined]>([
    ['end_turn', 'end_turn', undefined],
    ['tool_use', 'tool_use', undefined],
    ['max_tokens', 'max_tokens', undefined],
    ['stop_sequence', 'stop_sequence', undefined],
    ['refusal', 'refusal', undefined],
    ['pause_turn', 'end_turn', 'pause_turn'],
    ['model_context_window_exceeded', 'max_tokens', 'model_context_window_exceeded'],
    ['a_reason_from_the_future', 'end_turn', 'a_reason_from_the_future'],
  ])('maps stop reason %s to %s', async (wire, stopReason, providerStopReason) => {
    const reply = anthropicResponse({ content: [{ type: 'text', text: 'x' }], stopReason: 'end_turn', providerStopReason: wire, usage }, REPORTED_MODEL);
    const response = await answer(reply);
    expect(response.stopReason).toBe(stopReason);
    expect(response.providerStopReason).toBe(providerStopReason);
  });

  it('maps usage', async () => {
    const response = await answer(anthropicResponse({ content: [], stopReason: 'end_turn', usage: { inputTokens: 3_456, outputTokens: 789 } }, REPORTED_MODEL));
    expect(response.usage).toEqual({ inputTokens: 3_456, outputTokens: 789 });
  });

  it('drops thinking and other blocks it does not know, without failing', async () => {
    const body = {
      ...VALID_BODY,
      content: [
        { type: 'thinking', thinking: 'Let me look.', signature: 'c2ln' },
        { type: 'redacted_thinking', data: 'ZGF0YQ==' },
        { type: 'text', text: 'Benign.' },
        { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: { query: 'x' } },
      ],
    };
    const response = await answer({ body, headers: { 'request-id': 'req_thinking' } });
    expect(response.content).toEqual([{ type: 'text', text: 'Benign.' }]);
    expect(response.requestId).toBe('req_thinking');
  });
});

describe('AnthropicProvider: the request', () => {
  const script: ScriptedConversation = {
    schemaVersion: 1,
    modelId: REPORTED_MODEL,
    turns: [
      { response: { content: [{ type: 'tool_use', id: 'toolu_01', name: 'lookup_ip', input: { ip: '10.0.0.1' } }], stopReason: 'tool_use', usage } },
      { response: { content: [{ type: 'text', text: '{"verdict":"benign"}' }], stopReason: 'end_turn', usage } },
    ],
  };
  const secondTurn: ModelRequest = {
    modelId: MODEL,
    system: 'You investigate findings.',
    messages: [
      USER,
      { role: 'assistant', content: [{ type: 'text', text: 'Looking it up.' }, { type: 'tool_use', id: 'toolu_01', name: 'lookup_ip', input: { ip: '10.0.0.1' } }] },
      { role: 'user', content: [{ type: 'tool_result', toolUseId: 'toolu_01', content: '{"error":"no such ip"}', isError: true }] },
    ],
    tools: [{ name: 'lookup_ip', description: 'Looks an IP up.', inputSchema: { type: 'object', properties: { ip: { type: 'string' } }, required: ['ip'] } }],
    maxTokens: 1_024,
    temperature: 0.2,
  };

  it('sends system, messages with tool_use and tool_result blocks, tools, max_tokens and temperature as the Messages API documents them', async () => {
    server.setHandler(scriptedAnthropicHandler(script, { apiKey: API_KEY }));
    const response = await provider().converse(secondTurn);
    expect(response).toMatchObject({ content: [{ type: 'text', text: '{"verdict":"benign"}' }], modelId: REPORTED_MODEL, requestId: 'req_msg_fake_2' });
    expect(server.requests).toHaveLength(1);
    const [sent] = server.requests;
    expect(sent?.method).toBe('POST');
    expect(sent?.path).toBe('/v1/messages');
    expect(sent?.body).toEqual({
      model: MODEL,
      system: 'You investigate findings.',
      max_tokens: 1_024,
      temperature: 0.2,
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Investigate finding 42.' }] },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Looking it up.' },
            { type: 'tool_use', id: 'toolu_01', name: 'lookup_ip', input: { ip: '10.0.0.1' } },
          ],
        },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: '{"error":"no such ip"}', is_error: true }] },
      ],
      tools: [{ name: 'lookup_ip', description: 'Looks an IP up.', input_schema: { type: 'object', properties: { ip: { type: 'string' } }, required: ['ip'] } }],
    });
  });

  it('sends max_tokens 4096 by default, and no temperature, empty system or empty tools', async () => {
    server.setHandler(scriptedAnthropicHandler(script));
    await provider().converse({ modelId: MODEL, system: '', messages: [USER], tools: [] });
    expect(server.requests[0]?.body).toEqual({ model: MODEL, max_tokens: 4_096, messages: [{ role: 'user', content: [{ type: 'text', text: 'Investigate finding 42.' }] }] });
  });

  it('sends the API key as x-api-key, read at every call, and a rotated key from the next call on', async () => {
    const keys = [API_KEY, API_KEY, 'sk-ant-rotated-key-0002'];
    let reads = 0;
    const apiKey = async (): Promise<string> => keys[reads++] ?? API_KEY;
    server.setHandler(() => anthropicResponse({ content: [{ type: 'text', text: 'ok' }], stopReason: 'end_turn', usage }, REPORTED_MODEL));
    const anthropic = provider({ apiKey });
    await anthropic.converse(REQUEST);
    await anthropic.converse(REQUEST);
    await anthropic.converse(REQUEST);
    expect(reads).toBe(3);
    expect(server.requests.map((r) => r.headers['x-api-key'])).toEqual(keys);
    expect(server.requests[0]?.headers.authorization).toBeUndefined();
  });

  it('lets a fault reading the key through as it is (the router counts it transient), and reads it again on the next call', async () => {
    let reads = 0;
    const unreadable = new Error('secret not found');
    const apiKey = async (): Promise<string> => {
      reads += 1;
      if (reads === 1) throw unreadable;
      return API_KEY;
    };
    server.setHandler(scriptedAnthropicHandler(script, { apiKey: API_KEY }));
    const anthropic = provider({ apiKey });
    expect(await rejection(anthropic.converse(REQUEST))).toBe(unreadable);
    expect(server.requests).toHaveLength(0);
    await expect(anthropic.converse(REQUEST)).resolves.toMatchObject({ stopReason: 'tool_use' });
    expect(reads).toBe(2);
  });

  it('fails with authentication when the fake refuses the key', async () => {
    server.setHandler(scriptedAnthropicHandler(script, { apiKey: 'sk-ant-another-key-000000' }));
    const refused = (await rejection(provider().converse(REQUEST))) as ModelProviderError;
    expect(factsOf(refused)).toEqual(expectedFacts('authentication', false, { status: 401, requestId: 'req_error_401' }));
    expect(refused.message).toBe('anthropic claude-x: 401 authentication_error: invalid x-api-key');
    expect(refused.message).not.toContain(API_KEY);
  });

  it('never puts the API key in an error message, even when the provider echoes it', async () => {
    const echoed = await fault(anthropicError(401, 'authentication_error', `invalid x-api-key ${API_KEY}`));
    expect(echoed.message).toBe('anthropic claude-x: 401 authentication_error: invalid x-api-key [redacted]');
  });
});

describe('AnthropicProvider: faults (one HTTP request each: SDK retries are off)', () => {
  it('429 with retry-after in seconds: throttled, retryable, the delay in ms', async () => {
    const error = await fault(anthropicError(429, 'rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit', { 'retry-after': '2' }));
    expect(factsOf(error)).toEqual(expectedFacts('throttled', true, { status: 429, retryAfterMs: 2_000, requestId: 'req_error_429' }));
    expect(error.message).toBe('anthropic claude-x: 429 rate_limit_error: Number of request tokens has exceeded your per-minute rate limit');
  });

  it('429 with retry-after-ms: the delay as given', async () => {
    const error = await fault(anthropicError(429, 'rate_limit_error', 'slow down', { 'retry-after-ms': '1500', 'retry-after': '2', 'request-id': 'req_429b' }));
    expect(factsOf(error)).toEqual(expectedFacts('throttled', true, { status: 429, retryAfterMs: 1_500, requestId: 'req_429b' }));
  });

  it('500 api_error: server_error, retryable', async () => {
    const error = await fault(anthropicError(500, 'api_error', 'Internal server error'));
    expect(factsOf(error)).toEqual(expectedFacts('server_error', true, { status: 500, requestId: 'req_error_500' }));
    expect(error.message).toBe('anthropic claude-x: 500 api_error: Internal server error');
  });

  it('500 with a body that is not JSON: server_error, the body kept short', async () => {
    const error = await fault({ status: 500, raw: `<html>${'x'.repeat(1_000)}</html>`, headers: { 'content-type': 'text/html' } });
    expect(factsOf(error)).toEqual(expectedFacts('server_error', true, { status: 500 }));
    expect(error.message.length).toBeLessThan(400);
    expect(error.message).toMatch(/^anthropic claude-x: 500: <html>x+…$/);
  });

  it('529 overloaded_error: overloaded, retryable', async () => {
    const error = await fault(anthropicError(529, 'overloaded_error', 'Overloaded'));
    expect(factsOf(error)).toEqual(expectedFacts('overloaded', true, { status: 529, requestId: 'req_error_529' }));
    expect(error.message).toBe('anthropic claude-x: 529 overloaded_error: Overloaded');
  });

  it('400 invalid_request_error: invalid_request, terminal', async () => {
    const error = await fault(anthropicError(400, 'invalid_request_error', 'max_tokens: Field required'));
    expect(factsOf(error)).toEqual(expectedFacts('invalid_request', false, { status: 400, requestId: 'req_error_400' }));
    expect(error.message).toBe('anthropic claude-x: 400 invalid_request_error: max_tokens: Field required');
  });

  it('401 authentication_error: authentication, terminal', async () => {
    const error = await fault(anthropicError(401, 'authentication_error', 'invalid x-api-key'));
    expect(factsOf(error)).toEqual(expectedFacts('authentication', false, { status: 401, requestId: 'req_error_401' }));
  });

  it('404 not_found_error (an unknown model): not_found, terminal', async () => {
    const error = await fault(anthropicError(404, 'not_found_error', 'model: claude-x'));
    expect(factsOf(error)).toEqual(expectedFacts('not_found', false, { status: 404, requestId: 'req_error_404' }));
  });

  it('no headers within timeoutMs: timeout, retryable, without waiting for the answer', async () => {
    const started = Date.now();
    const error = await fault({ ...anthropicResponse({ content: [], stopReason: 'end_turn', usage }, REPORTED_MODEL), delayMs: 1_000 }, { timeoutMs: 200 });
    expect(Date.now() - started).toBeLessThan(900);
    expect(factsOf(error)).toEqual(expectedFacts('timeout', true));
    expect(error.message).toBe('anthropic claude-x: no complete answer within 200 ms');
  });

  it('a body that stalls after the headers: timeout at timeoutMs (the SDK timeout covers the headers only)', async () => {
    const stalling = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'request-id': 'req_stall' });
        res.write('{"id":"msg_stall",');
        setTimeout(() => res.end('"type":"message"}'), 2_000).unref();
      });
    });
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const url = `http://127.0.0.1:${(stalling.address() as AddressInfo).port}`;
      const error = (await rejection(provider({ baseUrl: url, timeoutMs: 300 }).converse(REQUEST))) as ModelProviderError;
      expect(Date.now() - started).toBeLessThan(1_500);
      expect(factsOf(error)).toEqual(expectedFacts('timeout', true, { status: 200, requestId: 'req_stall' }));
    } finally {
      stalling.closeAllConnections();
      await new Promise<void>((resolve) => stalling.close(() => resolve()));
    }
  });

  it('a connection dropped before the headers: connection, retryable', async () => {
    const error = await fault({ drop: 'before-headers' });
    expect(factsOf(error)).toEqual(expectedFacts('connection', true));
    expect(error.message).toBe('anthropic claude-x: connection failed (other side closed)');
  });

  it('a connection dropped mid-body: connection, retryable, with the status and request id that arrived', async () => {
    const error = await fault({ ...anthropicResponse({ content: [{ type: 'text', text: 'x'.repeat(200) }], stopReason: 'end_turn', usage }, REPORTED_MODEL, 'msg_mid'), drop: 'mid-body' });
    expect(factsOf(error)).toEqual(expectedFacts('connection', true, { status: 200, requestId: 'req_msg_mid' }));
    expect(error.message).toMatch(/^anthropic claude-x: connection dropped while reading the body/);
  });

  it('a refused connection: connection, retryable', async () => {
    const closed = await startFakeServer(() => ({}));
    await closed.close();
    const error = (await rejection(provider({ baseUrl: closed.url }).converse(REQUEST))) as ModelProviderError;
    expect(factsOf(error)).toEqual(expectedFacts('connection', true));
    expect(error.message).toMatch(/^anthropic claude-x: connection failed \(.*ECONNREFUSED.*\)$/);
  });

  it('malformed JSON: malformed_response, retryable', async () => {
    const error = await fault({ raw: '{"id": ', headers: { 'request-id': 'req_bad' } });
    expect(factsOf(error)).toEqual(expectedFacts('malformed_response', true, { status: 200, requestId: 'req_bad' }));
    expect(error.message).toBe('anthropic claude-x: malformed response: the body is not complete JSON');
  });

  it('truncated JSON: malformed_response', async () => {
    const raw = JSON.stringify(VALID_BODY);
    const error = await fault({ raw: raw.slice(0, Math.floor(raw.length * 0.7)) });
    expect(factsOf(error)).toEqual(expectedFacts('malformed_response', true, { status: 200 }));
  });

  it('an empty 200: malformed_response', async () => {
    const error = await fault({ raw: '' });
    expect(error.kind).toBe('malformed_response');
  });

  it('a 200 that is not JSON: malformed_response', async () => {
    const error = await fault({ raw: 'hello', headers: { 'content-type': 'text/plain' } });
    expect(error.kind).toBe('malformed_response');
    expect(error.message).toBe('anthropic claude-x: malformed response: body: Invalid input: expected object, received string');
  });

  it.each<[string, unknown, RegExp]>([
    ['an unrelated object', { hello: 'world' }, /malformed response: type: .*; model: .*; content: .*/],
    ['no content array', { ...VALID_BODY, content: undefined }, /malformed response: content: /],
    ['no usage', { ...VALID_BODY, usage: undefined }, /malformed response: usage: /],
    ['usage that is not a count', { ...VALID_BODY, usage: { input_tokens: 'ten', output_tokens: 5 } }, /malformed response: usage\.input_tokens: /],
    ['a null stop reason', { ...VALID_BODY, stop_reason: null }, /malformed response: stop_reason: /],
    ['a tool_use block without an id', { ...VALID_BODY, content: [{ type: 'tool_use', name: 'x', input: {} }] }, /malformed response: content\.0\.id: /],
    ['a text block without text', { ...VALID_BODY, content: [{ type: 'text' }] }, /malformed response: content\.0\.text: /],
    ['an error envelope with status 200', { type: 'error', error: { type: 'api_error', message: 'x' } }, /malformed response: type: /],
  ])('a 200 JSON body of the wrong shape (%s): malformed_response', async (_name, body, message) => {
    const error = await fault({ body, headers: { 'request-id': 'req_shape' } });
    expect(factsOf(error)).toEqual(expectedFacts('malformed_response', true, { status: 200, requestId: 'req_shape' }));
    expect(error.message).toMatch(message);
  });
});

describe('scriptedAnthropicHandler: what the Messages API refuses', () => {
  const script: ScriptedConversation = { schemaVersion: 1, modelId: REPORTED_MODEL, turns: [{ response: { content: [{ type: 'text', text: 'ok' }], stopReason: 'end_turn', usage } }] };
  const toolUse = { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_01', name: 'lookup_ip', input: { ip: '10.0.0.1' } }] };
  const user = { role: 'user', content: [{ type: 'text', text: 'Investigate finding 42.' }] };

  it.each<[string, Record<string, unknown>, string]>([
    ['no max_tokens', { model: MODEL, messages: [user] }, 'max_tokens: Field required'],
    ['a temperature above 1', { model: MODEL, max_tokens: 10, temperature: 1.5, messages: [user] }, 'temperature: Input should be a number between 0 and 1'],
    ['a negative temperature', { model: MODEL, max_tokens: 10, temperature: -0.1, messages: [user] }, 'temperature: Input should be a number between 0 and 1'],
    [
      'a tool_use with no tool_result in the next message',
      { model: MODEL, max_tokens: 10, messages: [user, toolUse, user] },
      'messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01. Each `tool_use` block must have a corresponding `tool_result` block in the next message.',
    ],
  ])('answers 400 invalid_request_error to %s', async (_name, body, message) => {
    server.setHandler(scriptedAnthropicHandler(script));
    const refused = await fetch(`${server.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message } });
  });

  it('accepts a tool_use answered in the next message', async () => {
    server.setHandler(scriptedAnthropicHandler({ ...script, turns: [script.turns[0]!, script.turns[0]!] }));
    const answered = { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: 'ok' }] };
    const body = { model: MODEL, max_tokens: 10, temperature: 1, messages: [user, toolUse, answered] };
    const accepted = await fetch(`${server.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(accepted.status).toBe(200);
  });
});
