/**
 * The OpenAI provider through the real SDK client (`openai`) over HTTP against the
 * fake provider server on 127.0.0.1: what it sends, how it reads each answer, and
 * how each fault maps to a {@link ModelProviderError}, with exactly one HTTP request
 * per call (SDK retries off).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OpenAiProvider } from '../../../../lambdas/adapters/providers/openai';
import type { Message, ModelRequest, ModelResponse, ToolSpec } from '../../../../lambdas/core/contracts/model';
import type { ScriptedConversation } from '../../../../lambdas/core/contracts/scripted';
import { ModelProviderError, type ProviderFaultKind } from '../../../../lambdas/core/errors';
import { FAKE_OPENAI_API_KEY, openAiError, openAiResponse, scriptedOpenAiHandler } from '../../../support/fake-providers/openai';
import { startFakeServer, type FakeReply, type FakeServer, type RecordedRequest } from '../../../support/fake-providers/server';
import { rejection } from '../../support/rejection';

const MODEL = 'gpt-4.1';
/** The model id as OpenAI reports it: the dated snapshot that served the call. */
const SERVED_MODEL = 'gpt-4.1-2025-04-14';
let server: FakeServer;
let seen = 0;

beforeAll(async () => {
  server = await startFakeServer(() => openAiError(500, 'server_error', 'no handler set'));
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  seen = server.requests.length;
  server.setHandler(() => openAiError(500, 'server_error', 'no handler set'));
});

/** The requests the fake received during the current test. */
const received = (): RecordedRequest[] => server.requests.slice(seen);

const usage = { inputTokens: 120, outputTokens: 14 };
const ECHO: ToolSpec = { name: 'echo', description: 'Returns its text.', inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } };
const LOOKUP: ToolSpec = { name: 'lookup', description: 'Finds a record.', inputSchema: { type: 'object', properties: { id: { type: 'integer' } } } };
const FIRST: Message = { role: 'user', content: [{ type: 'text', text: 'Investigate alert 42.' }] };

const provider = (options: { timeoutMs?: number; apiKey?: () => Promise<string>; baseUrl?: string } = {}): OpenAiProvider =>
  new OpenAiProvider({ baseUrl: options.baseUrl ?? `${server.url}/v1`, apiKey: options.apiKey ?? (async () => FAKE_OPENAI_API_KEY), timeoutMs: options.timeoutMs ?? 5_000 });
const request = (overrides: Partial<ModelRequest> = {}): ModelRequest => ({ modelId: MODEL, system: 'Be brief.', messages: [FIRST], tools: [ECHO], ...overrides });
const answer = (reply: FakeReply): void => server.setHandler(() => reply);
const textResponse = (text: string): Omit<ModelResponse, 'modelId' | 'requestId'> => ({ content: [{ type: 'text', text }], stopReason: 'end_turn', usage });

/** A `chat.completion` body with this message and finish reason (for shapes `openAiResponse` does not make). */
function completion(message: Record<string, unknown>, finishReason: string | null, extra: Record<string, unknown> = {}): FakeReply {
  return {
    headers: { 'x-request-id': 'req_raw' },
    body: {
      id: 'chatcmpl-raw',
      object: 'chat.completion',
      created: 1_760_000_000,
      model: SERVED_MODEL,
      choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: null, ...message }, logprobs: null, finish_reason: finishReason }],
      usage: { prompt_tokens: 120, completion_tokens: 14, total_tokens: 134 },
      ...extra,
    },
  };
}

/** The fault a call fails with, checked to be a ModelProviderError of this provider and model, after exactly one request. */
async function fault(call: Promise<unknown>): Promise<ModelProviderError> {
  const error = await rejection(call);
  expect(error).toBeInstanceOf(ModelProviderError);
  const providerError = error as ModelProviderError;
  expect(providerError).toMatchObject({ name: 'ModelProviderError', provider: 'openai', modelId: MODEL });
  expect(received()).toHaveLength(1);
  return providerError;
}

describe('OpenAiProvider: answers', () => {
  it('reads a text answer, its usage, the reported model, the request id and the system fingerprint', async () => {
    answer(openAiResponse({ ...textResponse('{"answer":"done"}'), systemFingerprint: 'fp_1a2b3c' }, SERVED_MODEL, 'chatcmpl-text'));
    const response = await provider().converse(request());
    expect(response).toEqual({
      content: [{ type: 'text', text: '{"answer":"done"}' }],
      stopReason: 'end_turn',
      usage,
      modelId: SERVED_MODEL,
      requestId: 'req_chatcmpl-text',
      systemFingerprint: 'fp_1a2b3c',
    });
    expect(received()).toHaveLength(1);
  });

  it('leaves out the system fingerprint and the request id when the server sends none', async () => {
    const reply = completion({ content: 'hi' }, 'stop');
    answer({ ...reply, headers: {} });
    const response = await provider().converse(request());
    expect(response).toEqual({ content: [{ type: 'text', text: 'hi' }], stopReason: 'end_turn', usage, modelId: SERVED_MODEL });
  });

  it('reads one tool call, its arguments parsed from JSON text', async () => {
    const call = { type: 'tool_use', id: 'call_abc', name: 'echo', input: { text: 'hi', nested: { n: [1, 2] } } } as const;
    answer(openAiResponse({ content: [call], stopReason: 'tool_use', usage }, SERVED_MODEL));
    const response = await provider().converse(request());
    expect(response.content).toEqual([call]);
    expect(response.stopReason).toBe('tool_use');
    expect(response.providerStopReason).toBeUndefined();
  });

  it('reads parallel tool calls in order, after the text', async () => {
    const calls = [
      { type: 'tool_use', id: 'call_1', name: 'echo', input: { text: 'a' } },
      { type: 'tool_use', id: 'call_2', name: 'lookup', input: { id: 7 } },
      { type: 'tool_use', id: 'call_3', name: 'echo', input: { text: 'b' } },
    ] as const;
    answer(openAiResponse({ content: [{ type: 'text', text: 'Checking both.' }, ...calls], stopReason: 'tool_use', usage }, SERVED_MODEL));
    const response = await provider().converse(request({ tools: [ECHO, LOOKUP] }));
    expect(response.content).toEqual([{ type: 'text', text: 'Checking both.' }, ...calls]);
    expect(response.stopReason).toBe('tool_use');
  });

  it.each([
    { finish: 'stop', message: { content: 'done' }, stopReason: 'end_turn', provider: undefined },
    { finish: 'tool_calls', message: { tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'echo', arguments: '{}' } }] }, stopReason: 'tool_use', provider: undefined },
    { finish: 'length', message: { content: '{"answer": "cut' }, stopReason: 'max_tokens', provider: undefined },
    { finish: 'content_filter', message: { content: null }, stopReason: 'refusal', provider: 'content_filter' },
    { finish: 'function_call', message: { function_call: { name: 'echo', arguments: '{"text":"x"}' } }, stopReason: 'tool_use', provider: 'function_call' },
    { finish: 'eos', message: { content: 'done' }, stopReason: 'end_turn', provider: 'eos' },
    { finish: 'stop', message: { tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'echo', arguments: '{}' } }] }, stopReason: 'tool_use', provider: 'stop' },
    { finish: null, message: { content: 'done' }, stopReason: 'end_turn', provider: undefined },
  ])('maps finish_reason $finish ($stopReason) and keeps it as providerStopReason only when it is not plain', async ({ finish, message, stopReason, provider: raw }) => {
    answer(completion(message, finish));
    const response = await provider().converse(request());
    expect(response.stopReason).toBe(stopReason);
    expect(response.providerStopReason).toBe(raw);
  });

  it('reads the legacy function_call as a tool call whose id comes from the completion id', async () => {
    answer(completion({ function_call: { name: 'echo', arguments: '{"text":"x"}' } }, 'function_call'));
    const response = await provider().converse(request());
    expect(response.content).toEqual([{ type: 'tool_use', id: 'chatcmpl-raw_function_call', name: 'echo', input: { text: 'x' } }]);
  });

  it('reads a refusal as a text block with stop reason refusal', async () => {
    answer(completion({ refusal: 'I cannot help with that.' }, 'stop'));
    const response = await provider().converse(request());
    expect(response.content).toEqual([{ type: 'text', text: 'I cannot help with that.' }]);
    expect(response).toMatchObject({ stopReason: 'refusal', providerStopReason: 'stop' });
  });

  it('keeps tool arguments that are not a JSON object as { _raw } for the runtime to reject; empty arguments read as {}', async () => {
    const call = (id: string, args: string): Record<string, unknown> => ({ id, type: 'function', function: { name: 'echo', arguments: args } });
    answer(completion({ tool_calls: [call('call_1', '{"text": "hi'), call('call_2', '[1,2]'), call('call_3', ''), call('call_4', 'null')] }, 'tool_calls'));
    const response = await provider().converse(request());
    expect(response.content).toEqual([
      { type: 'tool_use', id: 'call_1', name: 'echo', input: { _raw: '{"text": "hi' } },
      { type: 'tool_use', id: 'call_2', name: 'echo', input: { _raw: '[1,2]' } },
      { type: 'tool_use', id: 'call_3', name: 'echo', input: {} },
      { type: 'tool_use', id: 'call_4', name: 'echo', input: { _raw: 'null' } },
    ]);
  });

  it('replays a scripted conversation turn by turn, by the number of assistant messages', async () => {
    const script: ScriptedConversation = {
      schemaVersion: 1,
      modelId: 'scripted/openai',
      turns: [
        { response: { content: [{ type: 'tool_use', id: 'call_1', name: 'echo', input: { text: 'hi' } }], stopReason: 'tool_use', usage } },
        { response: textResponse('{"answer":"done"}') },
      ],
    };
    server.setHandler(scriptedOpenAiHandler(script));
    const first = await provider().converse(request());
    expect(first).toMatchObject({ stopReason: 'tool_use', modelId: MODEL, requestId: 'req_chatcmpl-fake-1' });
    const messages: Message[] = [
      FIRST,
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', toolUseId: 'call_1', content: '{"text":"hi"}', isError: false }] },
    ];
    const second = await provider().converse(request({ messages }));
    expect(second).toMatchObject({ content: [{ type: 'text', text: '{"answer":"done"}' }], stopReason: 'end_turn', requestId: 'req_chatcmpl-fake-2' });
    seen = server.requests.length;
    const past = await fault(provider().converse(request({ messages: [...messages, { role: 'assistant', content: second.content }, FIRST] })));
    expect(past).toMatchObject({ kind: 'invalid_request', status: 400, retryable: false });
  });

  it('works with a base URL without /v1 (POST /chat/completions)', async () => {
    server.setHandler(scriptedOpenAiHandler({ schemaVersion: 1, modelId: 'scripted/openai', turns: [{ response: textResponse('ok') }] }));
    const response = await provider({ baseUrl: server.url }).converse(request());
    expect(response.content).toEqual([{ type: 'text', text: 'ok' }]);
    expect(received()[0]?.path).toBe('/chat/completions');
  });
});

describe('OpenAiProvider: the request', () => {
  it('sends the system message first, assistant tool_calls with JSON arguments, tool messages, tools as functions, max_completion_tokens and temperature', async () => {
    answer(openAiResponse(textResponse('{"answer":"done"}'), SERVED_MODEL));
    const messages: Message[] = [
      FIRST,
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Looking.' },
          { type: 'tool_use', id: 'call_1', name: 'echo', input: { text: 'hi' } },
          { type: 'tool_use', id: 'call_2', name: 'lookup', input: { id: 7 } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', toolUseId: 'call_1', content: '{"text":"hi"}', isError: false },
          { type: 'tool_result', toolUseId: 'call_2', content: '{"error":"NotFound","message":"no record 7"}', isError: true },
          { type: 'text', text: 'Note: budget at 80%.' },
        ],
      },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'call_3', name: 'lookup', input: { id: 8 } }] },
      { role: 'user', content: [{ type: 'tool_result', toolUseId: 'call_3', content: '{"id":8}', isError: false }] },
    ];
    await provider().converse(request({ messages, tools: [ECHO, LOOKUP], maxTokens: 1_000, temperature: 0.2 }));
    const sent = received()[0];
    expect(sent).toMatchObject({ method: 'POST', path: '/v1/chat/completions' });
    expect(sent?.body).toEqual({
      model: MODEL,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Investigate alert 42.' },
        {
          role: 'assistant',
          content: 'Looking.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'echo', arguments: '{"text":"hi"}' } },
            { id: 'call_2', type: 'function', function: { name: 'lookup', arguments: '{"id":7}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '{"text":"hi"}' },
        { role: 'tool', tool_call_id: 'call_2', content: '{"error":"NotFound","message":"no record 7"}' },
        { role: 'user', content: 'Note: budget at 80%.' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_3', type: 'function', function: { name: 'lookup', arguments: '{"id":8}' } }] },
        { role: 'tool', tool_call_id: 'call_3', content: '{"id":8}' },
      ],
      max_completion_tokens: 1_000,
      temperature: 0.2,
      tools: [
        { type: 'function', function: { name: 'echo', description: ECHO.description, parameters: ECHO.inputSchema } },
        { type: 'function', function: { name: 'lookup', description: LOOKUP.description, parameters: LOOKUP.inputSchema } },
      ],
    });
  });

  it('defaults max_completion_tokens to 4096 and leaves out temperature and an empty tools list', async () => {
    answer(openAiResponse(textResponse('ok'), SERVED_MODEL));
    await provider().converse(request({ tools: [] }));
    expect(received()[0]?.body).toEqual({ model: MODEL, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Investigate alert 42.' }], max_completion_tokens: 4096 });
  });

  it('sends the key as a Bearer token and reads it on each call: a rotated key is used at once', async () => {
    let key = 'sk-first-key-000000';
    const keyed = provider({ apiKey: async () => key });
    answer(openAiResponse(textResponse('ok'), SERVED_MODEL));
    await keyed.converse(request());
    key = 'sk-second-key-111111';
    await keyed.converse(request());
    expect(received().map((r) => r.headers.authorization)).toEqual(['Bearer sk-first-key-000000', 'Bearer sk-second-key-111111']);
  });

  it('lets a failure to read the key through unchanged, without calling the API; an empty key is an authentication fault', async () => {
    const unreadable = new Error('secret not found');
    expect(await rejection(provider({ apiKey: async () => Promise.reject(unreadable) }).converse(request()))).toBe(unreadable);
    const empty = await rejection(provider({ apiKey: async () => '' }).converse(request()));
    expect(empty).toMatchObject({ name: 'ModelProviderError', kind: 'authentication', retryable: false });
    expect(received()).toHaveLength(0);
  });
});

describe('OpenAiProvider: faults', () => {
  it.each([
    { name: '429 with retry-after: 2', reply: openAiError(429, 'requests', 'Rate limit reached for gpt-4.1.', { 'retry-after': '2', 'x-request-id': 'req_429' }, 'rate_limit_exceeded'), kind: 'throttled', retryable: true, status: 429, wait: 2_000, requestId: 'req_429' },
    { name: '429 with retry-after-ms', reply: openAiError(429, 'tokens', 'Rate limit reached.', { 'retry-after-ms': '1500', 'retry-after': '2' }, 'rate_limit_exceeded'), kind: 'throttled', retryable: true, status: 429, wait: 1_500, requestId: undefined },
    { name: '500', reply: openAiError(500, 'server_error', 'The server had an error.', { 'x-request-id': 'req_500' }), kind: 'server_error', retryable: true, status: 500, wait: undefined, requestId: 'req_500' },
    { name: '503 (overloaded)', reply: openAiError(503, 'server_error', 'The engine is currently overloaded.'), kind: 'overloaded', retryable: true, status: 503, wait: undefined, requestId: undefined },
    { name: '529', reply: openAiError(529, 'overloaded_error', 'Overloaded'), kind: 'overloaded', retryable: true, status: 529, wait: undefined, requestId: undefined },
    { name: '400 (terminal)', reply: openAiError(400, 'invalid_request_error', "Invalid 'messages[2].tool_calls'.", {}, 'invalid_value'), kind: 'invalid_request', retryable: false, status: 400, wait: undefined, requestId: undefined },
    { name: '401', reply: openAiError(401, 'invalid_request_error', 'Incorrect API key provided.', {}, 'invalid_api_key'), kind: 'authentication', retryable: false, status: 401, wait: undefined, requestId: undefined },
    { name: '404 (unknown model)', reply: openAiError(404, 'invalid_request_error', 'The model `gpt-4.1` does not exist.', {}, 'model_not_found'), kind: 'not_found', retryable: false, status: 404, wait: undefined, requestId: undefined },
    { name: '500 with an HTML body', reply: { status: 500, headers: { 'content-type': 'text/html' }, raw: '<html>Bad gateway</html>' }, kind: 'server_error', retryable: true, status: 500, wait: undefined, requestId: undefined },
  ] satisfies { name: string; reply: FakeReply; kind: ProviderFaultKind; retryable: boolean; status: number; wait: number | undefined; requestId: string | undefined }[])(
    '$name → $kind',
    async ({ reply, kind, retryable, status, wait, requestId }) => {
      answer(reply);
      const error = await fault(provider().converse(request()));
      expect(error).toMatchObject({ kind, retryable, status });
      expect(error.retryAfterMs).toBe(wait);
      expect(error.requestId).toBe(requestId);
    },
  );

  it('says model, status, code and the provider message', async () => {
    answer(openAiError(429, 'requests', 'Rate limit reached for gpt-4.1.', {}, 'rate_limit_exceeded'));
    const error = await fault(provider().converse(request()));
    expect(error.message).toBe('openai gpt-4.1: 429 rate_limit_exceeded: Rate limit reached for gpt-4.1.');
  });

  it('never puts the key in the message, even when the provider echoes it', async () => {
    const key = 'sk-proj-SECRET1234567890abcdef';
    answer(openAiError(401, 'invalid_request_error', `Incorrect API key provided: ${key}. Or ${key.slice(0, 10)}****cdef.`, {}, 'invalid_api_key'));
    const error = await fault(provider({ apiKey: async () => key }).converse(request({ messages: [{ role: 'user', content: [{ type: 'text', text: 'private request text' }] }] })));
    expect(received()[0]?.headers.authorization).toBe(`Bearer ${key}`);
    expect(error).toMatchObject({ kind: 'authentication', status: 401 });
    expect(error.message).not.toContain(key);
    expect(error.message).not.toContain('SECRET');
    expect(error.message).not.toContain('private request text');
    expect(error.cause).toBeUndefined();
  });

  it('times out a slow answer after timeoutMs', async () => {
    answer({ ...openAiResponse(textResponse('late'), SERVED_MODEL), delayMs: 1_000 });
    const started = Date.now();
    const error = await fault(provider({ timeoutMs: 200 }).converse(request()));
    expect(Date.now() - started).toBeLessThan(900);
    expect(error).toMatchObject({ kind: 'timeout', retryable: true, message: 'openai gpt-4.1: no answer within 200 ms' });
    expect(error.status).toBeUndefined();
  });

  it('reads a connection dropped before the headers as a connection fault', async () => {
    answer({ drop: 'before-headers' });
    const error = await fault(provider().converse(request()));
    expect(error).toMatchObject({ kind: 'connection', retryable: true });
    expect(error.status).toBeUndefined();
  });

  it('reads a connection dropped mid-body as a connection fault, with the status and request id of the head', async () => {
    answer({ ...openAiResponse(textResponse('x'.repeat(2_000)), SERVED_MODEL, 'chatcmpl-mid'), drop: 'mid-body' });
    const error = await fault(provider().converse(request()));
    expect(error).toMatchObject({ kind: 'connection', retryable: true, status: 200, requestId: 'req_chatcmpl-mid' });
  });

  const malformed: { name: string; reply: FakeReply }[] = [
    { name: 'malformed JSON', reply: { raw: '{"id": ', headers: { 'x-request-id': 'req_bad' } } },
    { name: 'truncated JSON', reply: { raw: JSON.stringify((openAiResponse(textResponse('done'), SERVED_MODEL).body as object)).slice(0, 60), headers: { 'x-request-id': 'req_bad' } } },
    { name: 'a body of the wrong shape', reply: { body: { id: 'chatcmpl-x', object: 'chat.completion', model: SERVED_MODEL, choices: [] }, headers: { 'x-request-id': 'req_bad' } } },
    { name: 'a choice without a message', reply: { body: { model: SERVED_MODEL, choices: [{ index: 0, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1 } }, headers: { 'x-request-id': 'req_bad' } } },
    { name: 'a completion without usage', reply: { ...completion({ content: 'hi' }, 'stop', { usage: undefined }), headers: { 'x-request-id': 'req_bad' } } },
    { name: 'an empty body', reply: { raw: '', headers: { 'x-request-id': 'req_bad' } } },
    { name: 'a non-JSON body', reply: { raw: '<html>ok</html>', headers: { 'content-type': 'text/html', 'x-request-id': 'req_bad' } } },
  ];
  it.each(malformed)('reads $name (200) as malformed_response', async ({ reply }) => {
    answer(reply);
    const error = await fault(provider().converse(request()));
    expect(error).toMatchObject({ kind: 'malformed_response', retryable: true, status: 200, requestId: 'req_bad' });
    expect(error.message).toMatch(/^openai gpt-4\.1: malformed response \(200\): /);
  });
});

describe('scriptedOpenAiHandler: what Chat Completions refuses', () => {
  const script: ScriptedConversation = { schemaVersion: 1, modelId: MODEL, turns: [{ response: textResponse('ok') }, { response: textResponse('ok') }] };
  const calls = { role: 'assistant', content: null, tool_calls: [1, 2].map((n) => ({ id: `call_${n}`, type: 'function', function: { name: 'echo', arguments: '{}' } })) };
  const post = (messages: unknown[]): Promise<Response> =>
    fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${FAKE_OPENAI_API_KEY}` },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Investigate alert 42.' }, ...messages] }),
    });

  it('answers 400 to an assistant message with tool_calls not followed by a tool message for each tool_call_id', async () => {
    server.setHandler(scriptedOpenAiHandler(script));
    const refused = await post([calls, { role: 'tool', tool_call_id: 'call_1', content: '{}' }, { role: 'user', content: 'go on' }]);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({
      error: {
        message: "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_2",
        type: 'invalid_request_error',
        param: 'messages.[3].role',
        code: null,
      },
    });
  });

  it('accepts tool_calls each answered by a tool message', async () => {
    server.setHandler(scriptedOpenAiHandler(script));
    const accepted = await post([calls, { role: 'tool', tool_call_id: 'call_2', content: '{}' }, { role: 'tool', tool_call_id: 'call_1', content: '{}' }]);
    expect(accepted.status).toBe(200);
  });
});
