/**
 * Model routing on the local cloud (agent in test/fixtures/routing.ts): the primary
 * (an Anthropic fake on 127.0.0.1) slows down past the route's SLO mid-run; its
 * circuit opens within the window and calls shift to the fallback (an OpenAI fake);
 * the run completes; once the primary recovers, a probe closes its circuit and calls
 * return to it. Both fakes check the API key each model turn read from Secrets Manager.
 * Every switch is in the session's event log and on the runtime's bus.
 */
import { DeleteCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelCheckpoint, NoticeRecord } from '../../lambdas/core/contracts/checkpoint';
import { modelKey } from '../../lambdas/core/routing';
import { ROUTING_KEYS, ROUTING_MODELS, ROUTING_PORTS, ROUTING_ROUTE, ROUTING_SLO_MS, ROUTING_TURNS, routingConversation } from '../fixtures/routing';
import { scriptedAnthropicHandler } from '../support/fake-providers/anthropic';
import { scriptedOpenAiHandler } from '../support/fake-providers/openai';
import { assistantTurns, startFakeServer, type FakeServer } from '../support/fake-providers/server';
import { api, checkpoints, doc, ended, expectCompleteEventLog, outputs, publishedFor, uniqueKey } from './harness';

/** How slow the degraded primary answers: twice its SLO. */
const DEGRADED_MS = ROUTING_SLO_MS * 2;
/** The fallback's latency: under the SLO (its circuit stays closed), slow enough to pace the run. */
const FALLBACK_MS = 250;

let primary: FakeServer;
let fallback: FakeServer;
/** The primary is degraded from its third call until the fallback has answered once (then it has recovered). */
let primaryCalls = 0;

beforeAll(async () => {
  await forgetHealth();
  const anthropic = scriptedAnthropicHandler(routingConversation, { apiKey: ROUTING_KEYS.anthropic });
  primary = await startFakeServer(async (request) => {
    primaryCalls += 1;
    const degraded = primaryCalls >= 3 && fallback.requests.length === 0;
    const reply = await anthropic(request);
    return degraded ? { ...reply, delayMs: DEGRADED_MS } : reply;
  }, ROUTING_PORTS.anthropic);
  const openai = scriptedOpenAiHandler(routingConversation, { apiKey: ROUTING_KEYS.openai });
  fallback = await startFakeServer(async (request) => ({ ...(await openai(request)), delayMs: FALLBACK_MS }), ROUTING_PORTS.openai);
});

afterAll(async () => {
  await primary?.close();
  await fallback?.close();
});

/** Deletes the route's models' health (a kept local cloud may hold an earlier run's). */
async function forgetHealth(): Promise<void> {
  const table = outputs.ModelHealthTableName;
  if (!table) throw new Error('stack output ModelHealthTableName missing');
  for (const ref of [ROUTING_ROUTE.primary, ...(ROUTING_ROUTE.fallbacks ?? [])]) {
    const items = await doc.send(new QueryCommand({ TableName: table, KeyConditionExpression: '#m = :m', ExpressionAttributeNames: { '#m': 'model' }, ExpressionAttributeValues: { ':m': modelKey(ref) } }));
    for (const item of (items.Items ?? []) as { model: string; sk: string }[]) await doc.send(new DeleteCommand({ TableName: table, Key: { model: item.model, sk: item.sk } }));
  }
}

describe('a primary slower than its SLO mid-run', () => {
  it('opens its circuit, serves from the fallback, completes the run, and returns to the primary after a probe', async () => {
    const run = await api.startRun('integ-routing', { question: 'echo twenty times' }, uniqueKey('routing'));
    await ended(run.executionArn, 'SUCCEEDED', 150_000);
    expect(await api.getRun(run.sessionId)).toMatchObject({ status: 'SUCCEEDED', output: { answer: `echoed ${ROUTING_TURNS} times` } });

    const records = await checkpoints(run.sessionId);
    const turns = records.filter((r): r is ModelCheckpoint => r.kind === 'model').sort((a, b) => a.step - b.step);
    expect(turns).toHaveLength(ROUTING_TURNS + 1);
    const servedBy = turns.map((t) => t.routing?.servedBy.modelId);
    // Primary, primary, primary (slow): then its p95 is above the SLO and the next call goes to the fallback.
    expect(servedBy.slice(0, 4)).toEqual([ROUTING_MODELS.primary, ROUTING_MODELS.primary, ROUTING_MODELS.primary, ROUTING_MODELS.fallback]);
    expect(turns[2]?.routing?.attempts[0]?.latencyMs).toBeGreaterThanOrEqual(DEGRADED_MS);
    const opened = turns[3]?.routing;
    expect(opened?.attempts[0]).toMatchObject({ modelId: ROUTING_MODELS.primary, outcome: 'skipped', calls: 0 });
    expect(opened?.transitions).toEqual([expect.objectContaining({ modelId: ROUTING_MODELS.primary, from: 'closed', to: 'open', reason: expect.stringContaining('p95 latency') as unknown })]);
    expect(opened?.transitions[0]?.stats?.p95Ms).toBeGreaterThan(ROUTING_SLO_MS);

    // After halfOpenAfterSeconds one call probes the recovered primary and closes its circuit; the rest stay on it.
    const probeAt = turns.findIndex((t) => t.routing?.attempts.some((a) => a.probe));
    expect(probeAt).toBeGreaterThan(3);
    const probe = turns[probeAt]?.routing;
    expect(probe?.servedBy.modelId).toBe(ROUTING_MODELS.primary);
    expect(probe?.transitions.map((t) => `${t.from}->${t.to}`)).toEqual(['open->half_open', 'half_open->closed']);
    expect(servedBy.slice(3, probeAt)).toEqual(Array(probeAt - 3).fill(ROUTING_MODELS.fallback));
    expect(servedBy.slice(probeAt)).toEqual(Array(servedBy.length - probeAt).fill(ROUTING_MODELS.primary));
    // The open circuit lasted at least halfOpenAfterSeconds, and no more than the scenario needs.
    const openedAt = Date.parse(opened?.transitions[0]?.at ?? '');
    const probedAt = Date.parse(probe?.transitions[0]?.at ?? '');
    expect(probedAt - openedAt).toBeGreaterThanOrEqual((ROUTING_ROUTE.breaker?.halfOpenAfterSeconds ?? 0) * 1000);

    // Each fake saw exactly the calls the checkpoints say it served, each with the key from Secrets Manager.
    expect(fallback.requests).toHaveLength(servedBy.filter((m) => m === ROUTING_MODELS.fallback).length);
    expect(new Set(fallback.requests.map((r) => r.headers.authorization))).toEqual(new Set([`Bearer ${ROUTING_KEYS.openai}`]));
    expect(new Set(primary.requests.map((r) => r.headers['x-api-key']))).toEqual(new Set([ROUTING_KEYS.anthropic]));
    // The conversation went on across providers: each request carried every earlier turn.
    expect(fallback.requests.map((r) => assistantTurns(r.body))).toEqual(turns.filter((t) => t.routing?.servedBy.index === 1).map((t) => t.step - 1));

    // The audit: provider, model as reported, parameters; no key anywhere in the checkpoints.
    expect(turns[3]).toMatchObject({ provider: 'openai', request: { modelId: ROUTING_MODELS.fallback }, params: { maxTokens: 4096 }, response: { modelId: ROUTING_MODELS.fallback } });
    // The model as the provider reported it (the Anthropic fake reports its script's id), beside the id requested.
    expect(turns[0]).toMatchObject({ provider: 'anthropic', request: { modelId: ROUTING_MODELS.primary }, response: { modelId: routingConversation.modelId, requestId: 'req_msg_fake_1' } });
    expect(JSON.stringify(records)).not.toContain(ROUTING_KEYS.anthropic);
    expect(JSON.stringify(records)).not.toContain(ROUTING_KEYS.openai);

    // Every switch is a notice in the log and an event on the bus.
    const notices = records.filter((r): r is NoticeRecord => r.kind === 'notice').map((n) => n.notice);
    expect(notices.filter((n) => n === 'CircuitOpened')).toHaveLength(1);
    expect(notices.filter((n) => n === 'CircuitHalfOpened')).toHaveLength(1);
    expect(notices.filter((n) => n === 'CircuitClosed')).toHaveLength(1);
    expect(notices.filter((n) => n === 'ModelFallback')).toHaveLength(probeAt - 3);
    // Models by their health keys: provider, model id, and where they are served.
    const primaryKey = `anthropic/${ROUTING_MODELS.primary}@127.0.0.1:${ROUTING_PORTS.anthropic}`;
    expect(modelKey(ROUTING_ROUTE.primary)).toBe(primaryKey);
    expect(await publishedFor(run.sessionId, 'CircuitOpened')).toEqual([expect.objectContaining({ model: primaryKey, to: 'open', step: 4 })]);
    expect(await publishedFor(run.sessionId, 'CircuitClosed')).toEqual([expect.objectContaining({ model: primaryKey, to: 'closed', step: probeAt + 1 })]);
    expect((await publishedFor(run.sessionId, 'ModelFallback'))[0]).toMatchObject({ primary: primaryKey, servedBy: `openai/${ROUTING_MODELS.fallback}@127.0.0.1:${ROUTING_PORTS.openai}`, step: 4 });
    await expectCompleteEventLog(run.sessionId, 'SessionSucceeded');
  });
});
