/**
 * The ssh-brute-force example: the log parser and the tools on the real Loghub
 * log, block_address's idempotency on fake stores, and the recorded
 * conversations replayed against the real tools so that they cannot drift from the log.
 *
 * Needs `.log` files loaded as text (a vitest plugin, like esbuild's text loader).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { MemoryBlockStore } from '../support/block-store';
import type { z } from 'zod';
import type { Message, ToolResultBlock, ToolUseBlock } from '../../../lambdas/core/contracts/model';
import { ScriptedConversationSchema, type ScriptedConversation } from '../../../lambdas/core/contracts/scripted';
import { toolSpec, type ToolContext, type ToolDefinition, type TriggerMeta } from '../../../lambdas/core/define';
import { ConfigurationError, ToolError } from '../../../lambdas/core/errors';
import { parseFinalAnswer } from '../../../lambdas/core/loop';
import { EventBridgeEnvelopeSchema } from '../../../lambdas/core/trigger';
import { PRICE_TABLE } from '../../../lambdas/core/budget';
import {
  agent,
  approvedConversation,
  findingPrompt,
  IncidentReportSchema,
  rejectedConversation,
  SshBruteForceFindingSchema,
  type IncidentReport,
} from '../../../examples/ssh-brute-force/agent';
import {
  failedAttemptsOf,
  LOG_YEAR,
  parseLine,
  parseLog,
  type LogLine,
} from '../../../examples/ssh-brute-force/log';
import { toolCallIdempotencyKey } from '../../../lambdas/core/ids';
import { rejection } from '../support/rejection';
import {
  blockAddress,
  blockIdFor,
  BLOCKLIST_TABLE_ENV,
  countFailedAttempts,
  createBlockAddressTool,
  createDynamoBlockStore,
  searchLogLines,
  showLogLines,
  tools,
  type BlockRecord,
  type CountFailedAttemptsOutput,
  type DocumentClientLike,
} from '../../../examples/ssh-brute-force/tools';

const EXAMPLE = join(__dirname, '../../../examples/ssh-brute-force');
const LOG_TEXT = readFileSync(join(EXAMPLE, 'data/OpenSSH_2k.log'), 'utf8');
const RAW_LINES = LOG_TEXT.split(/\r?\n/); // Loghub's file has CRLF line breaks and no final one
const LOG = parseLog(LOG_TEXT);
const line = (id: number): LogLine => {
  const found = LOG[id - 1];
  if (!found) throw new Error(`no line ${id}`);
  return found;
};

const EVENT = JSON.parse(readFileSync(join(EXAMPLE, 'events/guardduty-ssh-brute-force.json'), 'utf8')) as unknown;
const ENVELOPE = EventBridgeEnvelopeSchema.parse(EVENT);
const FINDING = SshBruteForceFindingSchema.parse(ENVELOPE.detail);
const OFFENDER = FINDING.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4;
const TRIGGER: TriggerMeta = { source: 'eventbridge', detailType: ENVELOPE['detail-type'], time: ENVELOPE.time };

const CONTEXT: ToolContext = { sessionId: 'ses_test', callId: 'toolu_01', step: 1, idempotencyKey: toolCallIdempotencyKey('ses_test', 1, 'toolu_01') };

/** Runs a tool as the runtime does: input through its schema (defaults applied), output checked by its schema. */
async function run<I extends z.ZodType, O extends z.ZodType>(
  tool: ToolDefinition<I, O>,
  input: unknown,
  context: ToolContext = CONTEXT,
): Promise<z.infer<O>> {
  if (!tool.handler) throw new Error(`${tool.name} has no handler (an HTTP tool)`);
  const output = await tool.handler(tool.input.parse(input), context);
  return tool.output.parse(output);
}


// ---------------------------------------------------------------------------
// log.ts
// ---------------------------------------------------------------------------

describe('parseLog on the real log', () => {
  it('parses every one of the 2,000 lines, numbering them from 1 and keeping their text', () => {
    expect(LOG).toHaveLength(2000);
    expect(RAW_LINES).toHaveLength(2000); // the file has no trailing line break
    LOG.forEach((l, i) => {
      expect(l.lineId).toBe(i + 1);
      expect(l.text).toBe(RAW_LINES[i]);
      expect(l.text).not.toContain('\r');
      expect(l.host).toBe('LabSZ');
      expect(l.process).toBe('sshd');
      expect(Number.isInteger(l.pid)).toBe(true);
      expect(l.occurrences).toBeGreaterThanOrEqual(1);
    });
  });

  it(`reads timestamps as UTC in ${LOG_YEAR}, in order, from 06:55:46 to 11:04:45 on 10 Dec`, () => {
    expect(line(1).timestamp).toBe(`${LOG_YEAR}-12-10T06:55:46Z`);
    expect(line(2000).timestamp).toBe(`${LOG_YEAR}-12-10T11:04:45Z`);
    expect(line(1).epochMs).toBe(Date.UTC(LOG_YEAR, 11, 10, 6, 55, 46));
    for (let i = 1; i < LOG.length; i++) expect(line(i + 1).epochMs).toBeGreaterThanOrEqual(line(i).epochMs);
  });

  it('classifies every line as the Loghub templates do (counts per template group of OpenSSH_2k.log_templates.csv)', () => {
    const kinds: Record<string, number> = {};
    for (const l of LOG) kinds[l.kind] = (kinds[l.kind] ?? 0) + 1;
    expect(kinds).toEqual({
      accepted: 1, // E1
      failed_password: 520, // E9 383 + E10 135 + E14 2
      failed_none: 4, // E8
      invalid_user: 226, // E12 113 + E13 113
      auth_failure: 646, // E15 2 + E16 6 + E17 2 + E18 7 + E19 110 + E20 384 + E21 135
      break_in_attempt: 85, // E27
      disconnect: 506, // E2 34 + E4 1 + E5 2 + E6 2 + E7 45 + E11 1 + E24 413 + E25 7 + E26 1
      no_identification: 10, // E3
      session: 2, // E22 + E23
    });
  });

  it('takes the address from [brackets] in a reverse-mapping warning', () => {
    expect(line(1)).toMatchObject({ kind: 'break_in_attempt', sourceAddress: '173.234.31.186', pid: 24200 });
  });

  it('parses a failed password for an invalid user', () => {
    expect(line(6)).toMatchObject({
      kind: 'failed_password',
      sourceAddress: '173.234.31.186',
      occurrences: 1,
      message: 'Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2',
    });
  });

  it('counts a "message repeated 5 times" line as 5 occurrences of the repeated message', () => {
    expect(line(30)).toMatchObject({ kind: 'failed_password', sourceAddress: '5.36.59.76', occurrences: 5 });
    expect(failedAttemptsOf(line(29)) + failedAttemptsOf(line(30))).toBe(6); // "PAM service(sshd) ignoring max retries; 6 > 3" (line 33)
    expect(line(285)).toMatchObject({ kind: 'failed_password', sourceAddress: '106.5.5.195', occurrences: 5 });
  });

  it('does not read an address out of a host name in rhost=', () => {
    expect(line(32).text).toContain('rhost=5.36.59.76.dynamic-dsl-ip.omantel.net.om');
    expect(line(32)).toMatchObject({ kind: 'auth_failure', sourceAddress: undefined });
    expect(line(12).text).toContain('rhost=ec2-52-80-34-196.cn-north-1.compute.amazonaws.com.cn');
    expect(line(12).sourceAddress).toBeUndefined();
  });

  it('takes the address from rhost= when it is one, and trims the trailing space of PAM lines', () => {
    expect(line(5).text.endsWith(' ')).toBe(true);
    expect(line(5)).toMatchObject({ kind: 'auth_failure', sourceAddress: '173.234.31.186' });
    expect(line(5).message.endsWith('rhost=173.234.31.186')).toBe(true);
  });

  it('takes the address after "by" in "Connection closed by"', () => {
    expect(line(8)).toMatchObject({ kind: 'disconnect', sourceAddress: '212.47.254.145' });
  });

  it('handles a user name with a leading space ("invalid user  0101")', () => {
    expect(line(189).message).toContain('invalid user  0101 from');
    expect(line(189)).toMatchObject({ kind: 'failed_password', sourceAddress: '5.188.10.180' });
  });

  it('does not count a "Failed none" probe as a failed attempt', () => {
    expect(line(193)).toMatchObject({ kind: 'failed_none', sourceAddress: '5.188.10.180' });
    expect(failedAttemptsOf(line(193))).toBe(0);
  });

  it('does not count the companion lines of a guess (Invalid user, pam_unix, check pass)', () => {
    for (const id of [2, 3, 4, 5]) expect(failedAttemptsOf(line(id))).toBe(0);
    expect(failedAttemptsOf(line(6))).toBe(1);
  });

  it('recognises the one accepted login and its session', () => {
    expect(line(956)).toMatchObject({ kind: 'accepted', sourceAddress: '119.137.62.142' });
    expect(line(957).kind).toBe('session');
    expect(LOG.filter((l) => l.kind === 'accepted')).toHaveLength(1);
  });

  it('names a "Did not receive identification string" probe', () => {
    expect(line(139)).toMatchObject({ kind: 'no_identification', sourceAddress: '123.235.32.19' });
  });

  it('gives every failed-password line an address', () => {
    expect(LOG.filter((l) => l.kind === 'failed_password' && l.sourceAddress === undefined)).toEqual([]);
  });
});

describe('parseLine and parseLog edge cases', () => {
  it('accepts a space-padded day and a tag without a pid', () => {
    expect(parseLine('Jan  1 00:00:01 h sshd: Server listening on 0.0.0.0 port 22.', 7)).toMatchObject({
      lineId: 7,
      timestamp: `${LOG_YEAR}-01-01T00:00:01Z`,
      pid: undefined,
      kind: 'other',
      sourceAddress: undefined,
    });
  });

  it('rejects text that is not a syslog line, and impossible dates', () => {
    expect(parseLine('hello', 1)).toBeUndefined();
    expect(parseLine('Feb 30 10:00:00 h sshd[1]: x', 1)).toBeUndefined();
    expect(parseLine('Dec 10 24:00:00 h sshd[1]: x', 1)).toBeUndefined();
    expect(parseLine('Foo 10 10:00:00 h sshd[1]: x', 1)).toBeUndefined();
  });

  it('does not take an out-of-range dotted quad for an address', () => {
    expect(parseLine('Dec 10 10:00:00 h sshd[1]: Connection closed by 256.1.1.1 [preauth]', 1)?.sourceAddress).toBeUndefined();
  });

  it('accepts CRLF and a trailing line break', () => {
    const text = `${RAW_LINES[0]}\r\n${RAW_LINES[1]}\r\n`;
    expect(parseLog(text).map((l) => l.text)).toEqual([RAW_LINES[0], RAW_LINES[1]]);
  });

  it('fails naming the first bad line', () => {
    expect(() => parseLog(`${RAW_LINES[0]}\nnot a log line\n`)).toThrow(/line 2 is not a syslog line/);
  });
});

// ---------------------------------------------------------------------------
// Read-only tools
// ---------------------------------------------------------------------------

/** An oracle independent of the parser: attempts per address from the raw text. */
function grepFailedAttempts(lines: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of lines) {
    const m = /Failed password for .* from (\d+\.\d+\.\d+\.\d+) port \d+ ssh2/.exec(text);
    if (!m?.[1]) continue;
    const repeated = /message repeated (\d+) times/.exec(text);
    counts.set(m[1], (counts.get(m[1]) ?? 0) + (repeated?.[1] ? Number(repeated[1]) : 1));
  }
  return counts;
}

describe('count_failed_attempts', () => {
  it('counts 528 failed attempts in the whole log, 286 of them from 183.62.140.253', async () => {
    const out = await run(countFailedAttempts, {});
    expect(out.totalFailedAttempts).toBe(528);
    expect(out.window).toEqual({ from: `${LOG_YEAR}-12-10T06:55:48Z`, to: `${LOG_YEAR}-12-10T11:04:45Z` });
    expect(out.sources[0]).toEqual({
      address: '183.62.140.253',
      attempts: 286,
      firstSeen: `${LOG_YEAR}-12-10T10:54:29Z`,
      lastSeen: `${LOG_YEAR}-12-10T11:04:43Z`,
      sampleLineIds: [1024, 1030, 1033, 1036, 1039],
    });
  });

  it('agrees with a plain grep of the raw log, address by address', async () => {
    const out = await run(countFailedAttempts, {});
    const oracle = grepFailedAttempts(RAW_LINES);
    expect(new Map(out.sources.map((s) => [s.address, s.attempts]))).toEqual(oracle);
    expect(out.sources.reduce((sum, s) => sum + s.attempts, 0)).toBe(out.totalFailedAttempts);
  });

  it('sorts by attempts, most first, and samples up to 5 failed-attempt lines of each address', async () => {
    const out = await run(countFailedAttempts, {});
    for (let i = 1; i < out.sources.length; i++) {
      expect(out.sources[i - 1]?.attempts).toBeGreaterThanOrEqual(out.sources[i]?.attempts ?? Infinity);
    }
    for (const s of out.sources) {
      expect(s.sampleLineIds.length).toBeGreaterThanOrEqual(1);
      expect(s.sampleLineIds.length).toBeLessThanOrEqual(5);
      for (const id of s.sampleLineIds) {
        expect(line(id).sourceAddress).toBe(s.address);
        expect(failedAttemptsOf(line(id))).toBeGreaterThan(0);
      }
      expect(line(s.sampleLineIds[0] ?? 0).timestamp).toBe(s.firstSeen);
    }
  });

  it('lists only addresses with at least minAttempts, but totals all of them', async () => {
    const out = await run(countFailedAttempts, { minAttempts: 10 });
    expect(out.sources.map((s) => [s.address, s.attempts])).toEqual([
      ['183.62.140.253', 286],
      ['187.141.143.180', 80],
      ['103.99.0.122', 46],
      ['112.95.230.3', 26],
      ['5.188.10.180', 18],
      ['185.190.58.151', 17],
    ]);
    expect(out.totalFailedAttempts).toBe(528);
  });

  it("counts within a window (the finding's), both ends inclusive", async () => {
    const out = await run(countFailedAttempts, {
      from: FINDING.service.eventFirstSeen,
      to: FINDING.service.eventLastSeen,
    });
    expect(out.window).toEqual({ from: `${LOG_YEAR}-12-10T10:54:29Z`, to: `${LOG_YEAR}-12-10T11:04:43Z` });
    expect(out.totalFailedAttempts).toBe(303);
    expect(out.sources.map((s) => [s.address, s.attempts])).toEqual([
      ['183.62.140.253', 286],
      ['103.99.0.122', 15],
      ['202.100.179.208', 1],
      ['88.147.143.242', 1],
    ]);
    const lastSecond = await run(countFailedAttempts, { from: `${LOG_YEAR}-12-10T11:04:45Z`, to: `${LOG_YEAR}-12-10T11:04:45Z` });
    expect(lastSecond.totalFailedAttempts).toBe(1); // line 2000
  });

  it('accepts times with an offset', async () => {
    const utc = await run(countFailedAttempts, { from: `${LOG_YEAR}-12-10T10:54:27Z` });
    const offset = await run(countFailedAttempts, { from: `${LOG_YEAR}-12-10T18:54:27+08:00` });
    expect(offset).toEqual(utc);
  });

  it('reports a null window and no sources when nothing matches', async () => {
    const out = await run(countFailedAttempts, { to: `${LOG_YEAR}-12-10T06:00:00Z` });
    expect(out).toEqual({ window: null, totalFailedAttempts: 0, sources: [] });
  });

  it('fails with a ToolError when from is after to', async () => {
    const err = await rejection(run(countFailedAttempts, { from: `${LOG_YEAR}-12-10T11:00:00Z`, to: `${LOG_YEAR}-12-10T10:00:00Z` }));
    expect(err).toBeInstanceOf(ToolError);
    expect(err.message).toMatch(/"from".*is after "to"/);
  });

  it('fails input validation for minAttempts below 1 and malformed times', () => {
    expect(countFailedAttempts.input.safeParse({ minAttempts: 0 }).success).toBe(false);
    expect(countFailedAttempts.input.safeParse({ from: 'Dec 10 10:00:00' }).success).toBe(false);
  });
});

describe('search_log_lines', () => {
  it('returns the total and the first 50 lines by default, with truncated set', async () => {
    const out = await run(searchLogLines, { pattern: '183\\.62\\.140\\.253' });
    expect(out.total).toBe(RAW_LINES.filter((t) => t.includes('183.62.140.253')).length);
    expect(out.total).toBe(867);
    expect(out.lines).toHaveLength(50);
    expect(out.truncated).toBe(true);
    expect(out.lines[0]).toEqual({ lineId: 1020, timestamp: `${LOG_YEAR}-12-10T10:54:27Z`, text: RAW_LINES[1019] });
  });

  it('honours limit, and clears truncated when everything fits', async () => {
    const five = await run(searchLogLines, { pattern: 'Accepted|session', limit: 5 });
    expect(five).toEqual({
      total: 3,
      lines: [956, 957, 965].map((id) => ({ lineId: id, timestamp: line(id).timestamp, text: line(id).text })),
      truncated: false,
    });
    const max = await run(searchLogLines, { pattern: 'Failed password', limit: 200 });
    expect(max.lines).toHaveLength(200);
    expect(max.total).toBe(520);
    expect(searchLogLines.input.safeParse({ pattern: 'x', limit: 201 }).success).toBe(false);
    expect(searchLogLines.input.safeParse({ pattern: 'x', limit: 0 }).success).toBe(false);
  });

  it('matches case-insensitively against the whole line, timestamp included', async () => {
    expect((await run(searchLogLines, { pattern: 'failed PASSWORD for ROOT' })).total).toBe(
      RAW_LINES.filter((t) => t.includes('Failed password for root')).length,
    );
    expect((await run(searchLogLines, { pattern: '^Dec 10 06:55:4' })).total).toBe(7);
  });

  it('filters by time range', async () => {
    const out = await run(searchLogLines, {
      pattern: 'Failed password .* from 183\\.62\\.140\\.253 ',
      from: `${LOG_YEAR}-12-10T11:04:43Z`,
      limit: 5,
    });
    expect(out.total).toBe(1);
    expect(out.lines.map((l) => l.lineId)).toEqual([1997]);
  });

  it('fails with a ToolError for an invalid regular expression', async () => {
    const err = await rejection(run(searchLogLines, { pattern: 'Failed (password' }));
    expect(err).toBeInstanceOf(ToolError);
    expect(err.message).toMatch(/"Failed \(password" is not a valid regular expression/);
  });

  it('fails input validation for an empty pattern', () => {
    expect(searchLogLines.input.safeParse({ pattern: '' }).success).toBe(false);
  });
});

describe('show_log_lines', () => {
  it('returns the lines in the order asked for, each once', async () => {
    const out = await run(showLogLines, { lineIds: [1997, 1024, 1997] });
    expect(out.lines).toEqual([
      { lineId: 1997, timestamp: `${LOG_YEAR}-12-10T11:04:43Z`, text: RAW_LINES[1996] },
      { lineId: 1024, timestamp: `${LOG_YEAR}-12-10T10:54:29Z`, text: RAW_LINES[1023] },
    ]);
  });

  it('fails with a ToolError naming every unknown id', async () => {
    const err = await rejection(run(showLogLines, { lineIds: [1, 2001, 9999] }));
    expect(err).toBeInstanceOf(ToolError);
    expect(err.message).toBe('no line with id 2001, 9999: the log has lines 1 to 2000');
  });

  it('fails input validation for no ids, more than 50, or a non-positive id', () => {
    expect(showLogLines.input.safeParse({ lineIds: [] }).success).toBe(false);
    expect(showLogLines.input.safeParse({ lineIds: Array.from({ length: 51 }, (_, i) => i + 1) }).success).toBe(false);
    expect(showLogLines.input.safeParse({ lineIds: [0] }).success).toBe(false);
  });
});

// ---------------------------------------------------------------------------
// block_address
// ---------------------------------------------------------------------------


/** A clock the test moves. */
function clock(start: string) {
  let now = Date.parse(start);
  return { now: () => new Date(now), advanceMinutes: (m: number) => (now += m * 60_000) };
}

describe('block_address', () => {
  const input = { address: '183.62.140.253', reason: '286 failed passwords' };

  it('needs approval and records the block for the default 60 minutes', async () => {
    const store = new MemoryBlockStore();
    const time = clock('2024-12-10T11:20:00.000Z');
    const tool = createBlockAddressTool(store, time.now);
    expect(tool.needsApproval).toBe(true);
    expect(blockAddress.needsApproval).toBe(true);
    const out = await run(tool, input, { ...CONTEXT, approval: { approvalId: 'apv_1', decidedBy: 'alice' } });
    const blockId = blockIdFor(CONTEXT.idempotencyKey);
    expect(blockId).toMatch(/^blk_[0-9a-f]{24}$/);
    expect(out).toEqual({
      address: '183.62.140.253',
      blockId,
      blockedAt: '2024-12-10T11:20:00.000Z',
      expiresAt: '2024-12-10T12:20:00.000Z',
      createdByThisCall: true,
    });
    expect(store.items.get('183.62.140.253')).toEqual({
      address: '183.62.140.253',
      blockId,
      reason: '286 failed passwords',
      sessionId: 'ses_test',
      callId: 'toolu_01',
      blockedAt: '2024-12-10T11:20:00.000Z',
      expiresAt: '2024-12-10T12:20:00.000Z',
      expiresAtEpoch: Date.parse('2024-12-10T12:20:00.000Z') / 1000,
      approvedBy: 'alice',
      approvalId: 'apv_1',
    });
  });

  it('is idempotent per call: a retry returns the first block unchanged', async () => {
    const store = new MemoryBlockStore();
    const time = clock('2024-12-10T11:20:00.000Z');
    const tool = createBlockAddressTool(store, time.now);
    const first = await run(tool, { ...input, durationMinutes: 1440 });
    time.advanceMinutes(3);
    const retry = await run(tool, { ...input, durationMinutes: 1440 });
    expect(retry).toEqual(first);
    expect(store.items.size).toBe(1);
  });

  it('returns the live block of another call instead of failing', async () => {
    const store = new MemoryBlockStore();
    const time = clock('2024-12-10T11:20:00.000Z');
    const tool = createBlockAddressTool(store, time.now);
    const first = await run(tool, input, { ...CONTEXT, sessionId: 'ses_other', callId: 'toolu_09', idempotencyKey: toolCallIdempotencyKey('ses_other', 1, 'toolu_09') });
    time.advanceMinutes(10);
    const second = await run(tool, input);
    expect(second).toEqual({ ...first, createdByThisCall: false });
    expect(second.blockId).not.toBe(blockIdFor(CONTEXT.idempotencyKey));
  });

  it('replaces an expired block', async () => {
    const store = new MemoryBlockStore();
    const time = clock('2024-12-10T11:20:00.000Z');
    const tool = createBlockAddressTool(store, time.now);
    await run(tool, input, { ...CONTEXT, sessionId: 'ses_other', idempotencyKey: toolCallIdempotencyKey('ses_other', 1, CONTEXT.callId) });
    time.advanceMinutes(61);
    const out = await run(tool, input);
    expect(out).toMatchObject({ createdByThisCall: true, blockedAt: '2024-12-10T12:21:00.000Z' });
  });

  it('fails input validation for a malformed address, an empty reason or a bad duration', () => {
    const schema = blockAddress.input;
    expect(schema.safeParse({ ...input, address: '183.62.140.256' }).success).toBe(false);
    expect(schema.safeParse({ ...input, address: 'example.com' }).success).toBe(false);
    expect(schema.safeParse({ ...input, reason: '' }).success).toBe(false);
    expect(schema.safeParse({ ...input, durationMinutes: 0 }).success).toBe(false);
    expect(schema.safeParse({ ...input, durationMinutes: 43_201 }).success).toBe(false);
  });

  it(`fails with a ConfigurationError naming ${BLOCKLIST_TABLE_ENV} when it is unset`, async () => {
    const saved = process.env[BLOCKLIST_TABLE_ENV];
    delete process.env[BLOCKLIST_TABLE_ENV];
    try {
      const err = await rejection(run(blockAddress, input));
      expect(err).toBeInstanceOf(ConfigurationError);
      expect(err.message).toContain(BLOCKLIST_TABLE_ENV);
    } finally {
      if (saved !== undefined) process.env[BLOCKLIST_TABLE_ENV] = saved;
    }
  });
});

describe('the DynamoDB block store', () => {
  const record: BlockRecord = {
    address: '183.62.140.253',
    blockId: 'blk_aaaaaaaaaaaaaaaaaaaaaaaa',
    reason: 'r',
    sessionId: 's',
    callId: 'c',
    blockedAt: '2024-12-10T11:20:00.000Z',
    expiresAt: '2024-12-10T12:20:00.000Z',
    expiresAtEpoch: 1733833200,
  };
  const now = 1733829600;

  /** A document client that answers each command with the next queued answer. */
  function fakeClient(answers: Array<(command: PutCommand | GetCommand) => unknown>) {
    const sent: Array<PutCommand | GetCommand> = [];
    const client: DocumentClientLike = {
      async send(command) {
        sent.push(command);
        const answer = answers.shift();
        if (!answer) throw new Error('unexpected call');
        return answer(command);
      },
    };
    return { client, sent };
  }
  const conditionFailed = () => {
    throw Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' });
  };

  it('puts the item with a condition that keeps a live block', async () => {
    const { client, sent } = fakeClient([() => ({})]);
    const store = createDynamoBlockStore(client, () => 'blocklist');
    await expect(store.putIfAbsent(record, now)).resolves.toEqual(record);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toBeInstanceOf(PutCommand);
    expect(sent[0]?.input).toEqual({
      TableName: 'blocklist',
      Item: record,
      ConditionExpression: 'attribute_not_exists(#address) OR #expiresAtEpoch <= :now',
      ExpressionAttributeNames: { '#address': 'address', '#expiresAtEpoch': 'expiresAtEpoch' },
      ExpressionAttributeValues: { ':now': now },
    });
  });

  it('returns the stored block, read consistently, when the condition fails', async () => {
    const stored = { ...record, blockId: 'blk_bbbbbbbbbbbbbbbbbbbbbbbb' };
    const { client, sent } = fakeClient([conditionFailed, () => ({ Item: stored })]);
    const store = createDynamoBlockStore(client, () => 'blocklist');
    await expect(store.putIfAbsent(record, now)).resolves.toEqual(stored);
    expect(sent[1]).toBeInstanceOf(GetCommand);
    expect(sent[1]?.input).toEqual({ TableName: 'blocklist', Key: { address: record.address }, ConsistentRead: true });
  });

  it('tries the put again when the stored block vanished in between', async () => {
    const { client, sent } = fakeClient([conditionFailed, () => ({}), () => ({})]);
    const store = createDynamoBlockStore(client, () => 'blocklist');
    await expect(store.putIfAbsent(record, now)).resolves.toEqual(record);
    expect(sent.map((c) => c.constructor.name)).toEqual(['PutCommand', 'GetCommand', 'PutCommand']);
  });

  it('passes other errors through', async () => {
    const throttled = Object.assign(new Error('slow down'), { name: 'ProvisionedThroughputExceededException' });
    const { client } = fakeClient([
      () => {
        throw throttled;
      },
    ]);
    const store = createDynamoBlockStore(client, () => 'blocklist');
    await expect(store.putIfAbsent(record, now)).rejects.toBe(throttled);
  });
});

// ---------------------------------------------------------------------------
// The agent, the sample event and the recorded conversations
// ---------------------------------------------------------------------------

describe('the agent', () => {
  it('is declared with its tools, limits and trigger', () => {
    expect(agent.name).toBe('ssh-investigator');
    expect(agent.maxSteps).toBe(10);
    expect(agent.tools.map((t) => t.name)).toEqual(['search_log_lines', 'count_failed_attempts', 'show_log_lines', 'block_address']);
    expect(agent.tools).toEqual([...tools]);
    expect(agent.tools.filter((t) => t.needsApproval).map((t) => t.name)).toEqual(['block_address']);
    // Priced as the Claude Sonnet 4.5-class model the conversation was recorded from.
    expect(agent.model).toEqual({ provider: 'scripted', script: approvedConversation, pricing: PRICE_TABLE['claude-sonnet-4-5'] });
    expect(agent.triggers).toEqual([
      {
        type: 'eventbridge',
        eventPattern: {
          source: ['aws.guardduty', 'agent-runtime.replay'],
          detailType: ['GuardDuty Finding'],
          detail: { type: ['UnauthorizedAccess:EC2/SSHBruteForce'] },
        },
        principal: expect.any(Function) as unknown,
      },
    ]);
  });

  it('investigates a finding on behalf of the account it came from, as its security responder', () => {
    const principal = agent.triggers[0]?.principal;
    if (typeof principal !== 'function') throw new Error('the trigger derives its principal from the event');
    expect(principal(ENVELOPE)).toEqual({ user: 'guardduty:123456789012', tenant: '123456789012', roles: ['security-responder'] });
  });

  it('declares budgets that leave room for a longer run than the recorded one, its Cedar policies and its output pipeline', () => {
    expect(agent.budgets).toEqual({ costUsd: 0.5, inputTokens: 150_000, outputTokens: 10_000, steps: 8, wallClockSeconds: 3600 });
    expect(agent.policies?.source).toBe('examples/ssh-brute-force/policies.cedar');
    expect(agent.policies?.text).toContain('permit');
    expect(agent.outputPipeline).toBeDefined();
  });

  it('describes every input field of every tool to the model', () => {
    for (const tool of agent.tools) {
      const spec = toolSpec(tool);
      expect(spec.description.length).toBeGreaterThan(20);
      const properties = spec.inputSchema.properties as Record<string, { description?: string }>;
      for (const [field, schema] of Object.entries(properties)) {
        expect(schema.description, `${tool.name}.${field}`).toBeTruthy();
      }
    }
  });

  it('rejects a finding of another type or with a malformed remote address', () => {
    const detail = ENVELOPE.detail as Record<string, unknown>;
    expect(SshBruteForceFindingSchema.safeParse({ ...detail, type: 'Recon:EC2/PortProbeUnprotectedPort' }).success).toBe(false);
    const bad = structuredClone(detail) as { service: { action: { networkConnectionAction: { remoteIpDetails: { ipAddressV4: string } } } } };
    bad.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4 = '183.62.140';
    expect(SshBruteForceFindingSchema.safeParse(bad).success).toBe(false);
  });

  it('keeps the finding fields it does not name', () => {
    expect((FINDING as Record<string, unknown>).arn).toMatch(/^arn:aws:guardduty:/);
  });

  it('summarises the finding in the first message', () => {
    const text = findingPrompt(FINDING, TRIGGER);
    for (const s of [FINDING.id, OFFENDER, 'UnauthorizedAccess:EC2/SSHBruteForce', 'i-0a1b2c3d4e5f67890', 'port 22', FINDING.service.eventFirstSeen]) {
      expect(text).toContain(s);
    }
  });
});

describe('the sample GuardDuty event', () => {
  it('is an EventBridge event the trigger pattern matches', () => {
    const pattern = agent.triggers[0]?.eventPattern;
    expect(pattern?.source).toContain(ENVELOPE.source);
    expect(pattern?.detailType).toContain(ENVELOPE['detail-type']);
    expect((pattern?.detail as { type: string[] }).type).toContain(FINDING.type);
    expect(ENVELOPE).toMatchObject({ version: '0', account: '123456789012', region: 'us-east-1', resources: [] });
  });

  it('names the top offender of the log, over the span the log shows it active', async () => {
    const out = await run(countFailedAttempts, {});
    expect(OFFENDER).toBe(out.sources[0]?.address);
    const mentions = LOG.filter((l) => l.text.includes(OFFENDER));
    expect(Date.parse(FINDING.service.eventFirstSeen)).toBe(mentions[0]?.epochMs);
    expect(Date.parse(FINDING.service.eventLastSeen)).toBe(mentions[mentions.length - 1]?.epochMs);
    expect(FINDING.title).toContain(OFFENDER);
  });
});

/** What a replay of a conversation saw and produced. */
interface Replay {
  report: IncidentReport;
  /** Output of every tool call, by call id. */
  outputs: Map<string, unknown>;
  uses: ToolUseBlock[];
}

/**
 * Replays a recorded conversation the way the runtime does: checks each turn's
 * expectations against the request, runs the tool calls on the real tools
 * (block_address on an in-memory store, or answered with a rejection), and
 * parses the final answer with the runtime's parser.
 */
async function replay(script: ScriptedConversation, approval: 'approved' | 'rejected'): Promise<Replay> {
  const store = new MemoryBlockStore();
  const blockTool = createBlockAddressTool(store, () => new Date('2024-12-10T11:20:00.000Z'));
  const byName = new Map<string, ToolDefinition>(agent.tools.map((t) => [t.name, t]));
  const messages: Message[] = [{ role: 'user', content: [{ type: 'text', text: findingPrompt(FINDING, TRIGGER) }] }];
  const outputs = new Map<string, unknown>();
  const uses: ToolUseBlock[] = [];

  for (const [index, turn] of script.turns.entries()) {
    const where = `turn ${index + 1}`;
    const last = messages[messages.length - 1];
    const lastText = (last?.content ?? []).map((b) => (b.type === 'text' ? b.text : '')).join('');
    const results = (last?.content ?? []).filter((b): b is ToolResultBlock => b.type === 'tool_result').map((b) => b.content).join('\n');
    for (const s of turn.expect?.lastMessageIncludes ?? []) expect(lastText, where).toContain(s);
    for (const s of turn.expect?.toolResultIncludes ?? []) expect(results, where).toContain(s);
    if (turn.expect?.tools) expect([...turn.expect.tools].sort(), where).toEqual(agent.tools.map((t) => t.name).sort());

    messages.push({ role: 'assistant', content: turn.response.content });
    const calls = turn.response.content.filter((b): b is ToolUseBlock => b.type === 'tool_use');
    if (calls.length === 0) {
      expect(index, `${where}: the final answer is the last turn`).toBe(script.turns.length - 1);
      expect(turn.response.stopReason).toBe('end_turn');
      const text = turn.response.content.map((b) => (b.type === 'text' ? b.text : '')).join('');
      const parsed = parseFinalAnswer(text, agent.output);
      if (!parsed.ok) throw new Error(`${where}: final answer invalid: ${parsed.errors.join('; ')}`);
      return { report: IncidentReportSchema.parse(parsed.output), outputs, uses };
    }
    expect(turn.response.stopReason, where).toBe('tool_use');
    const resultBlocks: ToolResultBlock[] = [];
    for (const call of calls) {
      uses.push(call);
      const tool = byName.get(call.name);
      if (!tool) throw new Error(`${where}: ${call.id} names no tool: ${call.name}`);
      const input = tool.input.safeParse(call.input);
      expect(input.success, `${where}: ${call.id} input`).toBe(true);
      let content: string;
      if (tool.needsApproval && approval === 'rejected') {
        content = JSON.stringify({ status: 'rejected', reason: 'not approved by the reviewer' });
      } else {
        const context: ToolContext = { sessionId: 'ses_replay', callId: call.id, step: index + 1, idempotencyKey: toolCallIdempotencyKey('ses_replay', index + 1, call.id) };
        const runnable = tool.name === blockTool.name ? blockTool : tool;
        const output = await run(runnable, call.input, context);
        outputs.set(call.id, output);
        content = JSON.stringify(output);
      }
      resultBlocks.push({ type: 'tool_result', toolUseId: call.id, content, isError: false });
    }
    messages.push({ role: 'user', content: resultBlocks });
  }
  throw new Error('the conversation has no final answer');
}

describe.each([
  { file: 'conversation.json', script: approvedConversation, approval: 'approved' as const },
  { file: 'conversation.rejected.json', script: rejectedConversation, approval: 'rejected' as const },
])('recorded conversation $file', ({ file, script, approval }) => {
  const raw = JSON.parse(readFileSync(join(EXAMPLE, file), 'utf8')) as unknown;

  it('is a valid scripted conversation, identical to what the agent module loaded', () => {
    const parsed = ScriptedConversationSchema.parse(raw);
    expect(parsed).toEqual(script);
    expect(parsed.modelId).toBe('scripted/ssh-investigator-v1');
    expect(parsed.turns).toHaveLength(4);
    expect(parsed.turns.length).toBeLessThanOrEqual(agent.maxSteps);
  });

  it('names only declared tools, with inputs their schemas accept and unique call ids', () => {
    const ids = new Set<string>();
    for (const turn of script.turns) {
      for (const block of turn.response.content) {
        if (block.type !== 'tool_use') continue;
        const tool = agent.tools.find((t) => t.name === block.name);
        expect(tool, block.name).toBeDefined();
        expect(tool?.input.safeParse(block.input).success, `${block.id} ${block.name}`).toBe(true);
        expect(ids.has(block.id), block.id).toBe(false);
        ids.add(block.id);
      }
    }
  });

  it('asks to block the offender named by the finding, and only it', () => {
    const blocks = script.turns.flatMap((t) => t.response.content).filter((b) => b.type === 'tool_use' && b.name === 'block_address');
    expect(blocks).toHaveLength(1);
    expect((blocks[0] as ToolUseBlock).input.address).toBe(OFFENDER);
  });

  it('replays against the real tools: every expectation holds and the report agrees with the tool results', async () => {
    const { report, outputs, uses } = await replay(script, approval);

    // The window and the offending addresses are exactly what count_failed_attempts returned.
    const countUse = uses.find((u) => u.name === 'count_failed_attempts');
    const counted = outputs.get(countUse?.id ?? '') as CountFailedAttemptsOutput;
    expect(report.timeWindow).toEqual(counted.window);
    expect(report.offendingAddresses).toEqual(
      counted.sources.map(({ address, attempts, firstSeen, lastSeen }) => ({ address, attempts, firstSeen, lastSeen })),
    );
    expect(report.offendingAddresses[0]?.address).toBe(OFFENDER);

    // ... and what a fresh count over the whole log says.
    const fresh = await run(countFailedAttempts, {});
    const offender = fresh.sources.find((s) => s.address === OFFENDER);
    expect(report.offendingAddresses[0]).toEqual({
      address: OFFENDER,
      attempts: offender?.attempts,
      firstSeen: offender?.firstSeen,
      lastSeen: offender?.lastSeen,
    });
    expect(report.summary).toContain(`${OFFENDER} made ${offender?.attempts} failed password attempts`);
    expect(report.summary).toContain(`${fresh.totalFailedAttempts} failed attempts from all sources`);

    // Cited lines exist, were shown to the model, and show the offender failing.
    const seen = new Set<number>();
    for (const out of outputs.values()) {
      for (const l of (out as { lines?: Array<{ lineId: number }> }).lines ?? []) seen.add(l.lineId);
      for (const s of (out as { sources?: Array<{ sampleLineIds: number[] }> }).sources ?? []) s.sampleLineIds.forEach((id) => seen.add(id));
    }
    expect(report.citedLineIds.length).toBeGreaterThan(0);
    for (const id of report.citedLineIds) {
      expect(id).toBeLessThanOrEqual(LOG.length);
      expect(seen.has(id), `line ${id} was never returned by a tool`).toBe(true);
      expect(line(id).sourceAddress).toBe(OFFENDER);
      expect(failedAttemptsOf(line(id))).toBeGreaterThan(0);
    }
    expect(report.citedLineIds).toContain(offender?.sampleLineIds[0]);
    expect(line(report.citedLineIds[report.citedLineIds.length - 1] ?? 0).timestamp).toBe(offender?.lastSeen);

    // The block, approved or not.
    const blockUse = uses.find((u) => u.name === 'block_address');
    if (approval === 'approved') {
      expect(report.blockedAddresses).toEqual([OFFENDER]);
      expect(outputs.get(blockUse?.id ?? '')).toMatchObject({ address: OFFENDER, createdByThisCall: true });
    } else {
      expect(report.blockedAddresses).toEqual([]);
      expect(outputs.has(blockUse?.id ?? '')).toBe(false);
      expect(report.recommendedActions.some((a) => a.includes(OFFENDER) && /declined/.test(a) && /review/.test(a))).toBe(true);
    }
  });
});
