/**
 * The checkpoint format is versioned: records written by an older build must stay
 * readable. test/fixtures/checkpoints/v<N>/ holds realistic records of every kind
 * at schemaVersion N (and, from version 2, `bodies/<sha256>.json`: the bodies its
 * records store by reference). Records of today's version parse unchanged; older
 * ones parse through the stored-record schemas, keep every field and are upgraded
 * in memory to today's version.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_SCHEMA_VERSION, SUPPORTED_CHECKPOINT_SCHEMA_VERSIONS } from '../../../lambdas/core/constants';
import {
  checkpointKey,
  CheckpointRecordSchema,
  parseStoredRecord,
  SESSION_SK,
  StoredCheckpointRecordSchema,
  StoredSessionRecordSchema,
  upgradeV1,
  type BodyRef,
  type CheckpointRecord,
} from '../../../lambdas/core/contracts/checkpoint';
import { CheckpointRecordV1Schema } from '../../../lambdas/core/contracts/checkpoint-v1';
import type { ModelResponse } from '../../../lambdas/core/contracts/model';
import { CorruptCheckpointError } from '../../../lambdas/core/errors';
import { approvalIdFor } from '../../../lambdas/core/ids';
import { buildConversation } from '../../../lambdas/core/loop';
import { omit } from '../support/records';

const CORPUS = join(__dirname, '../../fixtures/checkpoints');
/** The kinds of each version: version 1 had five; version 2 adds intents, executions, rollbacks, governance notices and budget pauses. */
const KINDS: Readonly<Record<number, readonly string[]>> = {
  1: ['session', 'input', 'model', 'approval', 'tool'],
  2: ['session', 'input', 'model', 'approval', 'intent', 'tool', 'execution', 'rollback', 'notice', 'pause'],
};

interface CorpusFile {
  readonly version: number;
  readonly path: string;
  readonly raw: Record<string, unknown>;
}

const corpus: CorpusFile[] = readdirSync(CORPUS, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((dir) => {
    const match = /^v(\d+)$/.exec(dir.name);
    if (!match) throw new Error(`${dir.name}: corpus folders are named v<schemaVersion>`);
    return readdirSync(join(CORPUS, dir.name), { withFileTypes: true })
      .filter((f) => f.isFile() && f.name.endsWith('.json'))
      .map((f) => f.name)
      .sort()
      .map((f) => ({
        version: Number(match[1]),
        path: `${dir.name}/${f}`,
        raw: JSON.parse(readFileSync(join(CORPUS, dir.name, f), 'utf8')) as Record<string, unknown>,
      }));
  });

const filesOf = (version: number): CorpusFile[] => corpus.filter((f) => f.version === version);
/** A version's records as the store reads them (`StoredCheckpointRecordSchema`). */
const storedOf = (version: number): CheckpointRecord[] => filesOf(version).map((f) => parseStoredRecord(f.raw, StoredCheckpointRecordSchema));
const file = (path: string): CorpusFile => {
  const found = corpus.find((f) => f.path === path);
  if (!found) throw new Error(`no corpus file ${path}`);
  return found;
};

/** A body a version 2 record stores by reference, from `v2/bodies/<sha256>.json`, checked as BodyStore.get checks it. */
function bodyOf(ref: BodyRef): string {
  const body = readFileSync(join(CORPUS, 'v2', 'bodies', `${ref.sha256}.json`), 'utf8');
  expect(createHash('sha256').update(body).digest('hex'), ref.key).toBe(ref.sha256);
  expect(Buffer.byteLength(body), ref.key).toBe(ref.bytes);
  return body;
}

/** The records with their bodies loaded, as the model turn loads them. */
const loaded = (records: readonly CheckpointRecord[]): CheckpointRecord[] =>
  records.map((r) => {
    if (r.kind === 'model' && !r.response && r.responseRef) return { ...r, response: JSON.parse(bodyOf(r.responseRef)) as ModelResponse };
    if (r.kind === 'tool' && r.result === undefined && r.resultRef) return { ...r, result: bodyOf(r.resultRef) };
    return r;
  });

describe('the checkpoint corpus', () => {
  it('has a folder for every supported schema version, today included', () => {
    const versions = [...new Set(corpus.map((f) => f.version))].sort();
    expect(versions).toEqual([...SUPPORTED_CHECKPOINT_SCHEMA_VERSIONS].sort());
    expect(versions).toContain(CHECKPOINT_SCHEMA_VERSION);
    expect(CHECKPOINT_SCHEMA_VERSION).toBe(2);
  });

  it.each([1, 2])('holds a record of every kind of version %i, and no other kind', (version) => {
    expect(new Set(filesOf(version).map((f) => f.raw.kind))).toEqual(new Set(KINDS[version]));
  });

  it('holds a version 2 model turn and a tool call stored by reference, and inline ones', () => {
    const v2 = filesOf(2).map((f) => f.raw);
    expect(v2.filter((r) => r.kind === 'model').map((r) => ['response' in r, 'responseRef' in r])).toEqual(expect.arrayContaining([[true, false], [false, true]]));
    expect(v2.filter((r) => r.kind === 'tool').map((r) => ['result' in r, 'resultRef' in r])).toEqual(expect.arrayContaining([[true, false], [false, true]]));
  });

  it('holds a version 2 pause of an older build (numbered) and one keyed by the time its wait began', () => {
    const pauses = filesOf(2).filter((f) => f.raw.kind === 'pause').map((f) => f.raw.sk);
    expect(pauses).toEqual(['PAUSE#2026-11-20T08:58:40.115Z', 'PAUSE#0001']);
  });

  it.each(corpus.map((f) => [f.path, f] as const))('%s declares the schema version of its folder', (_path, f) => {
    expect(f.raw.schemaVersion).toBe(f.version);
  });
});

describe('version 1 records', () => {
  const v1 = filesOf(1);

  it.each(v1.map((f) => [f.path, f] as const))('%s still matches the frozen version 1 schema exactly', (_path, f) => {
    expect(CheckpointRecordV1Schema.parse(f.raw)).toEqual(f.raw);
  });

  it.each(v1.map((f) => [f.path, f] as const))("%s is not a record of today's schema as it stands", (_path, f) => {
    const parsed = CheckpointRecordSchema.safeParse(f.raw);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.path.join('.'))).toContain('schemaVersion');
  });

  it.each(v1.map((f) => [f.path, f] as const))('%s is read and upgraded to version 2, keeping every field', (_path, f) => {
    const read = parseStoredRecord(f.raw, StoredCheckpointRecordSchema);
    const added = f.raw.kind === 'session' ? { executions: 1, branch: 0 } : {};
    expect(read).toEqual({ ...f.raw, schemaVersion: 2, ...added });
    // What the upgrade produces is a valid version 2 record.
    expect(CheckpointRecordSchema.parse(read)).toEqual(read);
  });

  it('reads the version 1 session head through the session schema: one execution, branch 0, nothing else changed', () => {
    const head = file('v1/session.json').raw;
    expect(parseStoredRecord(head, StoredSessionRecordSchema)).toEqual({ ...head, schemaVersion: 2, executions: 1, branch: 0 });
  });

  it('upgrades in memory only: the raw record is not changed', () => {
    const raw = structuredClone(file('v1/session.json').raw);
    upgradeV1(CheckpointRecordV1Schema.parse(raw));
    expect(raw).toEqual(file('v1/session.json').raw);
  });

  it('rebuilds a conversation from the version 1 records', () => {
    const messages = buildConversation(storedOf(1));
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(messages[2]?.content).toEqual([expect.objectContaining({ type: 'tool_result', toolUseId: 'toolu_06', isError: false })]);
  });

  it('keys every version 1 checkpoint by its kind and step', () => {
    for (const record of storedOf(1)) {
      if (record.kind === 'session') expect(record.sk).toBe(SESSION_SK);
      if (record.kind === 'input') expect(record.sk).toBe(checkpointKey.input());
      if (record.kind === 'model') expect(record.sk).toBe(checkpointKey.model(record.step));
      if (record.kind === 'approval') expect(record.sk).toBe(checkpointKey.approval(record.step, record.callId));
      if (record.kind === 'tool') expect(record.sk).toBe(checkpointKey.tool(record.step, record.callId));
    }
  });
});

describe('version 2 records', () => {
  const v2 = filesOf(2);

  it.each(v2.map((f) => [f.path, f] as const))("%s parses unchanged with today's schema, and as a stored record", (_path, f) => {
    const parsed = CheckpointRecordSchema.safeParse(f.raw);
    expect(parsed.success, parsed.success ? '' : parsed.error.message).toBe(true);
    // Nothing the record holds is dropped on reading.
    expect(parsed.data).toEqual(f.raw);
    expect(parseStoredRecord(f.raw, StoredCheckpointRecordSchema)).toEqual(f.raw);
  });

  it('reads the version 2 session head through the session schema unchanged', () => {
    const head = file('v2/session.json').raw;
    expect(parseStoredRecord(head, StoredSessionRecordSchema)).toEqual(head);
  });

  it('belong to one session, whose head names its current execution and the one before', () => {
    const records = storedOf(2);
    expect(new Set(records.map((r) => r.sessionId)).size).toBe(1);
    const head = records.find((r) => r.kind === 'session');
    const execution = records.find((r) => r.kind === 'execution');
    const rollback = records.find((r) => r.kind === 'rollback');
    expect(head && execution && rollback).toBeTruthy();
    if (head?.kind !== 'session' || execution?.kind !== 'execution' || rollback?.kind !== 'rollback') return;
    expect(head.sessionId).toMatch(/^ses_[0-9a-f]{32}$/);
    expect(execution).toMatchObject({ execution: head.executions, executionArn: head.executionArn, parentExecutionArn: head.parentExecutionArn });
    expect(head.executionArn).toBe(`${head.parentExecutionArn ?? ''}-x${head.executions}`);
    expect(rollback.branch).toBe(head.branch);
  });

  it('keys every version 2 record by its kind and step', () => {
    for (const record of storedOf(2)) {
      const expected: Record<CheckpointRecord['kind'], () => string> = {
        session: () => SESSION_SK,
        input: () => checkpointKey.input(),
        model: () => (record.kind === 'model' ? checkpointKey.model(record.step) : ''),
        approval: () => (record.kind === 'approval' ? checkpointKey.approval(record.step, record.callId) : ''),
        intent: () => (record.kind === 'intent' ? checkpointKey.intent(record.step, record.callId) : ''),
        tool: () => (record.kind === 'tool' ? checkpointKey.tool(record.step, record.callId) : ''),
        execution: () => (record.kind === 'execution' ? checkpointKey.execution(record.execution) : ''),
        rollback: () => (record.kind === 'rollback' ? checkpointKey.rollback(record.branch) : ''),
        // A threshold notice is keyed by its budget, a tool budget notice by its step and call.
        notice: () =>
          record.kind === 'notice'
            ? checkpointKey.notice(record.notice, record.notice === 'BudgetThresholdReached' ? String(record.detail.budget) : `${record.step}#${String(record.detail.callId)}`)
            : '',
        // A pause is keyed by the time its wait began, the time its approval id derives from
        // (the key holds nothing else to rebuild it from); an older build numbered them (PAUSE#0001).
        pause: () => {
          if (record.kind !== 'pause') return '';
          if (/^PAUSE#\d{4}$/.test(record.sk)) return record.sk;
          const at = record.sk.slice('PAUSE#'.length);
          expect(at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
          expect(approvalIdFor(record.sessionId, record.step, `budget@${at}`)).toBe(record.approvalId);
          return checkpointKey.pause(at);
        },
      };
      expect(record.sk, record.kind).toBe(expected[record.kind]());
    }
  });

  it('stores bodies under content-addressed keys (<session>/<checkpoint key>/<sha256>.json) whose bodies match their SHA-256 and size', () => {
    const refs: Array<[CheckpointRecord, BodyRef]> = storedOf(2).flatMap((r): Array<[CheckpointRecord, BodyRef]> => {
      if (r.kind === 'model' && r.responseRef) return [[r, r.responseRef]];
      if (r.kind === 'tool' && r.resultRef) return [[r, r.resultRef]];
      return [];
    });
    expect(refs).toHaveLength(2);
    for (const [record, ref] of refs) {
      expect(ref.key).toBe(`${record.sessionId}/${record.sk}/${ref.sha256}.json`);
      expect(() => bodyOf(ref)).not.toThrow();
    }
  });

  it('rebuilds a conversation from the version 2 records, bodies stored by reference loaded first', () => {
    const records = storedOf(2);
    expect(() => buildConversation(records)).toThrow(/CP#000004#model: response body not loaded/);

    const messages = buildConversation(loaded(records));

    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(messages[0]?.content).toEqual([{ type: 'text', text: (file('v2/input.json').raw as { prompt: string }).prompt }]);
    expect(messages[2]?.content).toEqual([expect.objectContaining({ type: 'tool_result', toolUseId: 'toolu_06', isError: false })]);
    // The final answer came back from its body, and it is the output recorded on the head.
    const answer = messages[3]?.content[0];
    expect(answer?.type).toBe('text');
    expect(JSON.parse(answer?.type === 'text' ? answer.text : 'null')).toEqual((file('v2/session.json').raw as { output: unknown }).output);
  });
});

describe('parseStoredRecord', () => {
  const session = file('v2/session.json').raw;
  const tool = file('v1/tool.json').raw;

  it.each([3, 0, -1, '2', null, undefined])('fails with CorruptCheckpointError naming the record when schemaVersion is %j', (schemaVersion) => {
    for (const schema of [StoredCheckpointRecordSchema, StoredSessionRecordSchema]) {
      const read = (): unknown => parseStoredRecord({ ...session, schemaVersion }, schema);
      expect(read).toThrow(CorruptCheckpointError);
      expect(read).toThrow(`record ${String(session.sessionId)}/SESSION has unsupported schemaVersion ${String(schemaVersion)}`);
    }
  });

  it('fails with CorruptCheckpointError when a supported version does not match its schema', () => {
    expect(() => parseStoredRecord({ ...session, status: 'PAUSED' }, StoredCheckpointRecordSchema)).toThrow(CorruptCheckpointError);
    expect(() => parseStoredRecord({ ...session, executions: 0 }, StoredSessionRecordSchema)).toThrow(/SESSION is malformed/);
  });

  it('fails when a version 1 record uses what only version 2 has (a CANCELLED head, an outcome_unknown tool, a result by reference)', () => {
    const v1Head = file('v1/session.json').raw;
    expect(() => parseStoredRecord({ ...v1Head, status: 'CANCELLED' }, StoredSessionRecordSchema)).toThrow(CorruptCheckpointError);
    expect(() => parseStoredRecord({ ...v1Head, status: 'PAUSED_BUDGET' }, StoredSessionRecordSchema)).toThrow(CorruptCheckpointError);
    expect(() => parseStoredRecord({ ...v1Head, status: 'STOPPED' }, StoredSessionRecordSchema)).toThrow(CorruptCheckpointError);
    expect(() => parseStoredRecord({ ...tool, status: 'outcome_unknown' }, StoredCheckpointRecordSchema)).toThrow(CorruptCheckpointError);
    expect(() => parseStoredRecord({ ...tool, status: 'denied' }, StoredCheckpointRecordSchema)).toThrow(CorruptCheckpointError);
    expect(() => parseStoredRecord({ ...omit(tool, 'result'), resultRef: { bucket: 'b', key: 'k', bytes: 1, sha256: '0'.repeat(64) } }, StoredCheckpointRecordSchema)).toThrow(CorruptCheckpointError);
  });

  it('fails when a version 2 record is an unknown kind, or a body reference has no valid SHA-256', () => {
    expect(() => parseStoredRecord({ ...session, kind: 'mystery' }, StoredCheckpointRecordSchema)).toThrow(CorruptCheckpointError);
    const ref = file('v2/tool-ref.json').raw;
    expect(() => parseStoredRecord({ ...ref, resultRef: { ...(ref.resultRef as object), sha256: 'not-hex' } }, StoredCheckpointRecordSchema)).toThrow(CorruptCheckpointError);
  });
});

describe('CheckpointRecordSchema', () => {
  const session = file('v2/session.json').raw;

  it.each([1, 0, 3, '2', undefined])('fails when schemaVersion is %j', (schemaVersion) => {
    const parsed = CheckpointRecordSchema.safeParse({ ...session, schemaVersion });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.path.join('.'))).toContain('schemaVersion');
  });

  it('fails when the kind is unknown', () => {
    expect(CheckpointRecordSchema.safeParse({ ...session, kind: 'mystery' }).success).toBe(false);
  });

  it('takes the statuses of a paused and a stopped run, and a denied tool call', () => {
    expect(CheckpointRecordSchema.safeParse({ ...session, status: 'PAUSED_BUDGET' }).success).toBe(true);
    expect(CheckpointRecordSchema.safeParse({ ...session, status: 'STOPPED', stop: { reason: 'too expensive', by: 'alice', at: '2026-11-20T09:00:00.000Z' } }).success).toBe(true);
    expect(CheckpointRecordSchema.safeParse({ ...file('v2/tool.json').raw, status: 'denied', costUsd: 0 }).success).toBe(true);
  });

  it('fails when a notice is of an unknown kind, or a pause names an unknown budget', () => {
    expect(CheckpointRecordSchema.safeParse({ ...file('v2/notice.json').raw, notice: 'BudgetAlmostGone' }).success).toBe(false);
    expect(CheckpointRecordSchema.safeParse({ ...file('v2/pause.json').raw, budget: 'dollars' }).success).toBe(false);
  });

  it('fails when a session head lacks its executions or branch', () => {
    expect(CheckpointRecordSchema.safeParse(omit(session, 'executions')).success).toBe(false);
    expect(CheckpointRecordSchema.safeParse(omit(session, 'branch')).success).toBe(false);
  });
});

describe('checkpointKey', () => {
  it('sorts by step: step 2 before step 10, the input first, each turn its model, approvals, intents and tools', () => {
    const keys = [
      checkpointKey.tool(10, 'a'),
      checkpointKey.model(10),
      checkpointKey.model(2),
      checkpointKey.tool(2, 'z'),
      checkpointKey.intent(2, 'z'),
      checkpointKey.approval(2, 'z'),
      checkpointKey.model(1),
      checkpointKey.input(),
    ];
    expect([...keys].sort()).toEqual([
      checkpointKey.input(),
      checkpointKey.model(1),
      checkpointKey.approval(2, 'z'),
      checkpointKey.intent(2, 'z'),
      checkpointKey.model(2),
      checkpointKey.tool(2, 'z'),
      checkpointKey.model(10),
      checkpointKey.tool(10, 'a'),
    ]);
  });

  it('starts every checkpoint key with CP#, and no other record key', () => {
    for (const key of [checkpointKey.input(), checkpointKey.model(1), checkpointKey.approval(1, 'c'), checkpointKey.intent(1, 'c'), checkpointKey.tool(1, 'c')]) {
      expect(key.startsWith('CP#')).toBe(true);
    }
    for (const key of [
      SESSION_SK,
      checkpointKey.execution(2),
      checkpointKey.rollback(1),
      checkpointKey.abandoned(1, checkpointKey.model(3)),
      checkpointKey.notice('BudgetThresholdReached', 'costUsd'),
      checkpointKey.pause('2026-11-21T10:00:00.000Z'),
    ]) {
      expect(key.startsWith('CP#'), key).toBe(false);
    }
  });

  it('numbers executions and rollbacks with four digits, and moves an abandoned checkpoint under its branch', () => {
    expect(checkpointKey.execution(2)).toBe('EXEC#0002');
    expect(checkpointKey.rollback(1)).toBe('ROLLBACK#0001');
    expect(checkpointKey.abandoned(1, 'CP#000004#model')).toBe('ABANDONED#0001#CP#000004#model');
    expect([checkpointKey.execution(10), checkpointKey.execution(9)].sort()).toEqual(['EXEC#0009', 'EXEC#0010']);
  });

  it('keys a pause by the time its wait began, so that pauses sort by time', () => {
    expect(checkpointKey.pause('2026-11-21T10:00:00.000Z')).toBe('PAUSE#2026-11-21T10:00:00.000Z');
    const later = checkpointKey.pause('2026-11-21T10:00:00.001Z');
    const earlier = checkpointKey.pause('2026-11-20T23:59:59.999Z');
    expect([later, checkpointKey.pause('2026-11-21T10:00:00.000Z'), earlier].sort()).toEqual([earlier, 'PAUSE#2026-11-21T10:00:00.000Z', later]);
  });

  it('keys a notice once per notice and key', () => {
    expect(checkpointKey.notice('BudgetThresholdReached', 'costUsd')).toBe('NOTICE#BudgetThresholdReached#costUsd');
    expect(checkpointKey.notice('ToolBudgetExceeded', '3#toolu_07')).toBe('NOTICE#ToolBudgetExceeded#3#toolu_07');
  });
});
