/**
 * The Bedrock provider through the real SDK client (`BedrockRuntimeClient`, SigV4
 * with test credentials) over HTTP against the fake provider server on 127.0.0.1:
 * what it sends, how it reads each answer, and how each fault maps to a
 * {@link ModelProviderError} — with exactly one HTTP request per call (SDK retries off).
 */
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BedrockProvider } from '../../../../lambdas/adapters/providers/bedrock';
import type { Message, ModelRequest, ModelResponse, ToolSpec } from '../../../../lambdas/core/contracts/model';
import type { ScriptedConversation } from '../../../../lambdas/core/contracts/scripted';
import { ModelProviderError, type ProviderFaultKind } from '../../../../lambdas/core/errors';
import { bedrockError, bedrockResponse, conversePath, scriptedBedrockHandler } from '../../../support/fake-providers/bedrock';
import { startFakeServer, type FakeReply, type FakeServer } from '../../../support/fake-providers/server';
import { rejection } from '../../support/rejection';

const MODEL = 'anthropic.claude-sonnet-4-5-20250929-v1:0';
const CREDENTIAL_ENV = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_BEARER_TOKEN_BEDROCK'] as const;
const savedEnv = new Map<string, string | undefined>();
let server: FakeServer;

beforeAll(() => {
  for (const name of CREDENTIAL_ENV) savedEnv.set(name, process.env[name]);
  for (const name of CREDENTIAL_ENV) delete process.env[name];
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
});

afterAll(() => {
  for (const [name, value] of savedEnv) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

beforeEach(async () => {
  server = await startFakeServer(() => bedrockError(500, 'InternalServerException', 'no handler set'));
});

afterEach(async () => {
  await server.close();
});

const usage = { inputTokens: 120, outputTokens: 14 };
const TOOLS: ToolSpec[] = [
  { name: 'echo', description: 'Returns its text.', inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } },
];
const FIRST: Message = { role: 'user', content: [{ type: 'text', text: 'Investigate alert 42.' }] };

const provider = (timeoutMs = 5_000): BedrockProvider => new BedrockProvider({ region: 'us-east-1', endpoint: server.url, timeoutMs });
const request = (overrides: Partial<ModelRequest> = {}): ModelRequest => ({ modelId: MODEL, system: 'Be brief.', messages: [FIRST], tools: TOOLS, ...overrides });
const answer = (reply: FakeReply): void => server.setHandler(() => reply);
const textResponse = (text: string): Omit<ModelResponse, 'modelId' | 'requestId'> => ({ content: [{ type: 'text', text }], stopReason: 'end_turn', usage });

/** The fault a call fails with, checked to be a ModelProviderError of this provider and model. */
async function fault(call: Promise<unknown>): Promise<ModelProviderError> {
  const error = await rejection(call);
  expect(error).toBeInstanceOf(ModelProviderError);
  const providerError = error as ModelProviderError;
  expect(providerError).toMatchObject({ provider: 'bedrock', modelId: MODEL });
  return providerError;
}

describe('BedrockProvider: answers', () => {
  it('reads a text answer, its usage and the request id; the model id is the requested one', async () => {
    answer(bedrockResponse(textResponse('{"answer":"done"}'), 'req-text-1'));
    const response = await provider().converse(request());
    expect(response).toEqual({ content: [{ type: 'text', text: '{"answer":"done"}' }], stopReason: 'end_turn', usage, modelId: MODEL, requestId: 'req-text-1' });
    expect(server.requests).toHaveLength(1);
  });

  it('reads one tool call', async () => {
    const call = { type: 'tool_use', id: 'tooluse_01', name: 'echo', input: { text: 'hi' } } as const;
    answer(bedrockResponse({ content: [call], stopReason: 'tool_use', usage }, 'req-tool'));
    const response = await provider().converse(request());
    expect(response).toEqual({ content: [call], stopReason: 'tool_use', usage, modelId: MODEL, requestId: 'req-tool' });
  });

  it('reads several toolUse blocks in order, with text, and drops reasoning and other blocks', async () => {
    answer({
      headers: { 'x-amzn-requestid': 'req-many' },
      body: {
        output: {
          message: {
            role: 'assistant',
            content: [
              { reasoningContent: { reasoningText: { text: 'thinking', signature: 'sig' } } },
              { text: 'Checking both.' },
              { toolUse: { toolUseId: 'tooluse_a', name: 'echo', input: { text: 'a' } } },
              { toolUse: { toolUseId: 'tooluse_b', name: 'lookup', input: { id: 7, deep: { list: [1, 2] } } } },
              { citationsContent: { citations: [] } },
            ],
          },
        },
        stopReason: 'tool_use',
        usage: { inputTokens: 5, outputTokens: 9, totalTokens: 14, cacheReadInputTokens: 3 },
        metrics: { latencyMs: 12 },
      },
    });
    const response = await provider().converse(request());
    expect(response.content).toEqual([
      { type: 'text', text: 'Checking both.' },
      { type: 'tool_use', id: 'tooluse_a', name: 'echo', input: { text: 'a' } },
      { type: 'tool_use', id: 'tooluse_b', name: 'lookup', input: { id: 7, deep: { list: [1, 2] } } },
    ]);
    expect(response).toMatchObject({ stopReason: 'tool_use', usage: { inputTokens: 5, outputTokens: 9 }, requestId: 'req-many' });
  });

  it.each([
    ['end_turn', 'end_turn', undefined],
    ['tool_use', 'tool_use', undefined],
    ['max_tokens', 'max_tokens', undefined],
    ['stop_sequence', 'stop_sequence', undefined],
    ['guardrail_intervened', 'refusal', 'guardrail_intervened'],
    ['content_filtered', 'refusal', 'content_filtered'],
    ['model_context_window_exceeded', 'max_tokens', 'model_context_window_exceeded'],
    ['malformed_tool_use', 'end_turn', 'malformed_tool_use'],
    ['a_reason_from_the_future', 'end_turn', 'a_reason_from_the_future'],
  ] as const)('maps stopReason %s to %s (providerStopReason %s)', async (wire, stopReason, providerStopReason) => {
    answer(bedrockResponse({ ...textResponse('x'), providerStopReason: wire }));
    const response = await provider().converse(request());
    expect(response.stopReason).toBe(stopReason);
    expect(response.providerStopReason).toBe(providerStopReason);
    expect('providerStopReason' in response).toBe(providerStopReason !== undefined);
  });

  it('reads an answer with no content (a guardrail that blocked everything)', async () => {
    answer(bedrockResponse({ content: [], stopReason: 'refusal', usage }));
    await expect(provider().converse(request())).resolves.toMatchObject({ content: [], stopReason: 'refusal', providerStopReason: 'content_filtered' });
  });
});

/**
 * FIRST, then an answer with two echo calls, then their results (the second an error
 * with `failed` as its content), then `after` in the same user message.
 */
function toolExchange(failed: string, after: Message['content'] = []): Message[] {
  return [
    FIRST,
    {
      role: 'assistant',
      content: [
        { type: 'text', text: 'Looking.' },
        { type: 'tool_use', id: 'tooluse_1', name: 'echo', input: { text: 'hi' } },
        { type: 'tool_use', id: 'tooluse_2', name: 'echo', input: { text: 'again' } },
      ],
    },
    {
      role: 'user',
      content: [
        { type: 'tool_result', toolUseId: 'tooluse_1', content: '{"text":"hi"}', isError: false },
        { type: 'tool_result', toolUseId: 'tooluse_2', content: failed, isError: true },
        ...after,
      ],
    },
  ];
}

describe('BedrockProvider: the request', () => {
  it('sends a signed POST to /model/{modelId}/converse with system, messages, tool results, tools and inference settings', async () => {
    answer(bedrockResponse(textResponse('ok')));
    const messages = toolExchange('{"error":"no such line"}');
    await provider().converse(request({ messages, maxTokens: 1024, temperature: 0.2 }));

    expect(server.requests).toHaveLength(1);
    const sent = server.requests[0];
    expect(sent?.method).toBe('POST');
    expect(sent?.path).toBe('/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse');
    expect(sent?.path).toBe(conversePath(MODEL));
    expect(String(sent?.headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=test\/\d{8}\/us-east-1\/bedrock\/aws4_request/);
    expect(sent?.body).toEqual({
      system: [{ text: 'Be brief.' }],
      messages: [
        { role: 'user', content: [{ text: 'Investigate alert 42.' }] },
        {
          role: 'assistant',
          content: [
            { text: 'Looking.' },
            { toolUse: { toolUseId: 'tooluse_1', name: 'echo', input: { text: 'hi' } } },
            { toolUse: { toolUseId: 'tooluse_2', name: 'echo', input: { text: 'again' } } },
          ],
        },
        {
          role: 'user',
          content: [
            { toolResult: { toolUseId: 'tooluse_1', content: [{ text: '{"text":"hi"}' }], status: 'success' } },
            { toolResult: { toolUseId: 'tooluse_2', content: [{ text: '{"error":"no such line"}' }], status: 'error' } },
          ],
        },
      ],
      inferenceConfig: { maxTokens: 1024, temperature: 0.2 },
      toolConfig: {
        tools: [
          {
            toolSpec: {
              name: 'echo',
              description: 'Returns its text.',
              inputSchema: { json: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } },
            },
          },
        ],
      },
    });
  });

  it('sends no toolConfig when no tools are offered, and no inferenceConfig when nothing is set', async () => {
    answer(bedrockResponse(textResponse('ok')));
    await provider().converse(request({ tools: [] }));
    expect(server.requests[0]?.body).toEqual({ system: [{ text: 'Be brief.' }], messages: [{ role: 'user', content: [{ text: 'Investigate alert 42.' }] }] });
  });

  it('with no tool offered, sends earlier tool calls and results as text and no toolConfig (Converse refuses tool blocks without one), one block for one block', async () => {
    const script: ScriptedConversation = {
      schemaVersion: 1,
      modelId: MODEL,
      turns: [{ response: textResponse('first') }, { response: textResponse('{"answer":"done"}') }],
    };
    server.setHandler(scriptedBedrockHandler(script));
    const messages = toolExchange('{"error":"budget exhausted"}', [{ type: 'text', text: 'No tool is left: answer now.' }]);
    const response = await provider().converse(request({ messages, tools: [] }));
    expect(response).toMatchObject({ content: [{ type: 'text', text: '{"answer":"done"}' }], requestId: 'fake-bedrock-2' });
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.body).toEqual({
      system: [{ text: 'Be brief.' }],
      messages: [
        { role: 'user', content: [{ text: 'Investigate alert 42.' }] },
        {
          role: 'assistant',
          content: [{ text: 'Looking.' }, { text: '[tool call tooluse_1: echo {"text":"hi"}]' }, { text: '[tool call tooluse_2: echo {"text":"again"}]' }],
        },
        {
          role: 'user',
          content: [
            { text: '[tool result tooluse_1: {"text":"hi"}]' },
            { text: '[tool result tooluse_2 (error): {"error":"budget exhausted"}]' },
            { text: 'No tool is left: answer now.' },
          ],
        },
      ],
    });
  });

  it('uses a client it is given', async () => {
    answer(bedrockResponse(textResponse('ok'), 'req-given'));
    const client = new BedrockRuntimeClient({ region: 'eu-west-1', endpoint: server.url, maxAttempts: 1, requestHandler: new NodeHttpHandler() });
    const response = await new BedrockProvider({ timeoutMs: 5_000, client }).converse(request());
    expect(response.requestId).toBe('req-given');
    expect(String(server.requests[0]?.headers.authorization)).toContain('/eu-west-1/bedrock/aws4_request');
  });
});

describe('BedrockProvider: faults', () => {
  interface FaultCase {
    readonly reply: FakeReply;
    readonly kind: ProviderFaultKind;
    readonly status?: number;
    readonly retryAfterMs?: number;
    readonly requestId?: string;
    readonly message?: string;
  }
  const cases: Record<string, FaultCase> = {
    '429 ThrottlingException with retry-after: 2': {
      reply: bedrockError(429, 'ThrottlingException', 'Too many requests, please wait before trying again.', { 'retry-after': '2', 'x-amzn-requestid': 'req-429' }),
      kind: 'throttled',
      status: 429,
      retryAfterMs: 2_000,
      requestId: 'req-429',
      message: `bedrock ${MODEL}: ThrottlingException: Too many requests, please wait before trying again.`,
    },
    '429 ThrottlingException named with its namespace suffix': {
      reply: bedrockError(429, 'ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/', 'slow down', { 'x-amzn-requestid': 'req-429b' }),
      kind: 'throttled',
      status: 429,
      requestId: 'req-429b',
    },
    '500 InternalServerException': {
      reply: bedrockError(500, 'InternalServerException', 'internal error', { 'x-amzn-requestid': 'req-500' }),
      kind: 'server_error',
      status: 500,
      requestId: 'req-500',
    },
    '503 ServiceUnavailableException': {
      reply: bedrockError(503, 'ServiceUnavailableException', 'unavailable', { 'x-amzn-requestid': 'req-503' }),
      kind: 'overloaded',
      status: 503,
      requestId: 'req-503',
    },
    '529 with an exception name Bedrock does not document (by status)': {
      reply: bedrockError(529, 'SomeFutureOverloadException', 'overloaded', { 'x-amzn-requestid': 'req-529' }),
      kind: 'overloaded',
      status: 529,
      requestId: 'req-529',
      message: `bedrock ${MODEL}: HTTP 529 SomeFutureOverloadException: overloaded`,
    },
    '500 with a body that is not JSON and no error type (by status)': {
      reply: { status: 500, headers: { 'x-amzn-requestid': 'req-500-html' }, raw: '<html>Bad gateway</html>' },
      kind: 'server_error',
      status: 500,
      requestId: 'req-500-html',
    },
    '424 ModelErrorException': { reply: bedrockError(424, 'ModelErrorException', 'the model failed'), kind: 'server_error', status: 424 },
    '429 ModelNotReadyException': { reply: bedrockError(429, 'ModelNotReadyException', 'not ready'), kind: 'overloaded', status: 429 },
    '408 ModelTimeoutException': { reply: bedrockError(408, 'ModelTimeoutException', 'the model took too long'), kind: 'timeout', status: 408 },
    '400 ValidationException': {
      reply: bedrockError(400, 'ValidationException', 'messages.0.content: must not be empty', { 'x-amzn-requestid': 'req-400' }),
      kind: 'invalid_request',
      status: 400,
      requestId: 'req-400',
      message: `bedrock ${MODEL}: ValidationException: messages.0.content: must not be empty`,
    },
    '403 AccessDeniedException': {
      reply: bedrockError(403, 'AccessDeniedException', 'not authorized to perform bedrock:InvokeModel', { 'x-amzn-requestid': 'req-403' }),
      kind: 'permission',
      status: 403,
      requestId: 'req-403',
    },
    '403 UnrecognizedClientException': { reply: bedrockError(403, 'UnrecognizedClientException', 'invalid security token'), kind: 'authentication', status: 403 },
    '404 ResourceNotFoundException': { reply: bedrockError(404, 'ResourceNotFoundException', 'model not found'), kind: 'not_found', status: 404 },
    'a connection dropped before the headers': { reply: { drop: 'before-headers' }, kind: 'connection' },
    'a connection dropped mid-body': {
      reply: { ...bedrockResponse(textResponse('cut off'), 'req-mid'), drop: 'mid-body' },
      kind: 'connection',
      status: 200,
      requestId: 'req-mid',
    },
    'a body that is not JSON': { reply: { headers: { 'x-amzn-requestid': 'req-bad' }, raw: '{output: nope' }, kind: 'malformed_response', status: 200, requestId: 'req-bad' },
    'truncated JSON': {
      reply: { headers: { 'x-amzn-requestid': 'req-trunc' }, raw: JSON.stringify(bedrockResponse(textResponse('long answer')).body).slice(0, 40) },
      kind: 'malformed_response',
      status: 200,
      requestId: 'req-trunc',
    },
    'a 200 without output.message': {
      reply: { headers: { 'x-amzn-requestid': 'req-shape' }, body: { stopReason: 'end_turn', usage } },
      kind: 'malformed_response',
      status: 200,
      requestId: 'req-shape',
      message: `bedrock ${MODEL}: malformed response: output: Invalid input: expected object, received undefined`,
    },
    'a 200 without usage': {
      reply: { body: { output: { message: { role: 'assistant', content: [{ text: 'x' }] } }, stopReason: 'end_turn' } },
      kind: 'malformed_response',
      status: 200,
    },
    'a 200 whose toolUse has no name': {
      reply: { body: { output: { message: { role: 'assistant', content: [{ toolUse: { toolUseId: 't1', input: {} } }] } }, stopReason: 'tool_use', usage } },
      kind: 'malformed_response',
      status: 200,
    },
  };

  it.each(Object.entries(cases))('%s', async (_name, c) => {
    answer(c.reply);
    const error = await fault(provider().converse(request()));
    expect(error.kind).toBe(c.kind);
    expect(error.retryable).toBe(['throttled', 'overloaded', 'server_error', 'timeout', 'connection', 'malformed_response'].includes(c.kind));
    expect(error.status).toBe(c.status);
    expect(error.retryAfterMs).toBe(c.retryAfterMs);
    if (c.requestId !== undefined) expect(error.requestId).toBe(c.requestId);
    if (c.message !== undefined) expect(error.message).toBe(c.message);
    expect(error.message.startsWith(`bedrock ${MODEL}: `)).toBe(true);
    expect(error.message).not.toContain('Investigate alert 42');
    expect(server.requests).toHaveLength(1);
  });

  it('a 400 ValidationException is terminal; a 429 is retryable', async () => {
    answer(bedrockError(400, 'ValidationException', 'bad'));
    expect((await fault(provider().converse(request()))).retryable).toBe(false);
    answer(bedrockError(429, 'ThrottlingException', 'slow down'));
    expect((await fault(provider().converse(request()))).retryable).toBe(true);
  });

  it('times out a response slower than timeoutMs, without waiting for it', async () => {
    answer({ ...bedrockResponse(textResponse('late')), delayMs: 1_000 });
    const started = Date.now();
    const error = await fault(provider(200).converse(request()));
    const elapsed = Date.now() - started;
    expect(error).toMatchObject({ kind: 'timeout', retryable: true, message: `bedrock ${MODEL}: timed out after 200 ms` });
    expect(error.status).toBeUndefined();
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(900);
    expect(server.requests).toHaveLength(1);
  });

  it('a refused connection is a connection fault', async () => {
    const closed = server.url;
    await server.close();
    const error = await fault(new BedrockProvider({ region: 'us-east-1', endpoint: closed, timeoutMs: 5_000 }).converse(request()));
    expect(error).toMatchObject({ kind: 'connection', retryable: true });
    expect(error.message).toContain('ECONNREFUSED');
    server = await startFakeServer(() => bedrockError(500, 'InternalServerException', 'no handler set'));
  });
});

describe('scriptedBedrockHandler', () => {
  const SCRIPT: ScriptedConversation = {
    schemaVersion: 1,
    modelId: MODEL,
    turns: [
      { response: { content: [{ type: 'tool_use', id: 'tooluse_1', name: 'echo', input: { text: 'hi' } }], stopReason: 'tool_use', usage } },
      { response: { content: [{ type: 'text', text: '{"answer":"done"}' }], stopReason: 'end_turn', usage } },
    ],
  };
  const ASSISTANT: Message = { role: 'assistant', content: [{ type: 'tool_use', id: 'tooluse_1', name: 'echo', input: { text: 'hi' } }] };
  const RESULTS: Message = { role: 'user', content: [{ type: 'tool_result', toolUseId: 'tooluse_1', content: '{"text":"hi"}', isError: false }] };

  it('plays the turn at the number of assistant messages, then refuses a call past the end', async () => {
    server.setHandler(scriptedBedrockHandler(SCRIPT));
    const bedrock = provider();
    await expect(bedrock.converse(request())).resolves.toEqual({ ...SCRIPT.turns[0]?.response, modelId: MODEL, requestId: 'fake-bedrock-1' });
    await expect(bedrock.converse(request({ messages: [FIRST, ASSISTANT, RESULTS] }))).resolves.toEqual({
      ...SCRIPT.turns[1]?.response,
      modelId: MODEL,
      requestId: 'fake-bedrock-2',
    });
    const past = await fault(bedrock.converse(request({ messages: [FIRST, ASSISTANT, RESULTS, { role: 'assistant', content: [{ type: 'text', text: 'x' }] }, FIRST] })));
    expect(past).toMatchObject({ kind: 'invalid_request', status: 400 });
    expect(past.message).toContain('unexpected call 3');
  });

  it('refuses another model and an unsigned request', async () => {
    server.setHandler(scriptedBedrockHandler(SCRIPT));
    const other = await rejection(provider().converse(request({ modelId: 'amazon.nova-pro-v1:0' })));
    expect(other).toMatchObject({ kind: 'not_found', status: 404 });
    const unsigned = await fetch(`${server.url}${conversePath(MODEL)}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"messages":[]}' });
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
  });

  it('refuses toolUse or toolResult blocks without a toolConfig, as Converse does (400 ValidationException)', async () => {
    server.setHandler(scriptedBedrockHandler(SCRIPT));
    const signed = { 'content-type': 'application/json', authorization: 'AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/bedrock/aws4_request' };
    const messages = [
      { role: 'user', content: [{ text: 'Investigate alert 42.' }] },
      { role: 'assistant', content: [{ toolUse: { toolUseId: 'tooluse_1', name: 'echo', input: { text: 'hi' } } }] },
      { role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_1', content: [{ text: 'hi' }], status: 'success' } }] },
    ];
    const refused = await fetch(`${server.url}${conversePath(MODEL)}`, { method: 'POST', headers: signed, body: JSON.stringify({ messages }) });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('x-amzn-errortype')).toBe('ValidationException');
    expect(await refused.json()).toEqual({ message: 'The toolConfig field must be defined when using toolUse and toolResult content blocks.' });
    const toolConfig = { tools: [{ toolSpec: { name: 'echo', inputSchema: { json: { type: 'object' } } } }] };
    const accepted = await fetch(`${server.url}${conversePath(MODEL)}`, { method: 'POST', headers: signed, body: JSON.stringify({ messages, toolConfig }) });
    expect(accepted.status).toBe(200);
  });
});
