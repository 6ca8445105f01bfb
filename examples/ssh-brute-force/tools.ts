/**
 * The tools of the `ssh-investigator` agent: three read-only queries over the
 * bundled sshd log (`data/OpenSSH_2k.log`, parsed once per cold start) and
 * `block_address`, which records a block in a DynamoDB table after a human approves it.
 */
import { createHash } from 'node:crypto';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { defineTool, type ToolContext } from '../../lambdas/core/define';
import { documentClient } from '../../lambdas/adapters/clients';
import { requireEnv } from '../../lambdas/adapters/config';
import { ToolError, TransientError } from '../../lambdas/core/errors';
import logText from './data/OpenSSH_2k.log';
import { LOG_YEAR, SAMPLE_LINE_IDS, parseLog, searchLines, summariseFailedAttempts, type LogLine, type TimeRange } from './log';

/** The parsed log; a malformed bundle fails here, at cold start. */
const LOG: readonly LogLine[] = parseLog(logText);
const LOG_BY_ID = new Map<number, LogLine>(LOG.map((line) => [line.lineId, line]));

// ---------------------------------------------------------------------------
// Shared schemas
// ---------------------------------------------------------------------------

const isoInput = (what: string) =>
  z.iso
    .datetime({ offset: true })
    .describe(`${what}, ISO 8601 with Z or an offset, e.g. "${LOG_YEAR}-12-10T09:00:00Z". Log timestamps are UTC.`);

/**
 * A log line as the tools return it.
 * Example: `{"lineId":6,"timestamp":"2024-12-10T06:55:48Z","text":"Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2"}`
 */
export const LogLineRefSchema = z.object({
  lineId: z.number().int().positive().describe('1-based line number in the log; cite lines by it'),
  timestamp: z.iso
    .datetime()
    .describe(`When sshd logged the line, ISO 8601 UTC (the log records no year; ${LOG_YEAR} is assumed)`),
  text: z.string().describe('The line exactly as written in the log'),
});
export type LogLineRef = z.infer<typeof LogLineRefSchema>;

const toRef = (line: LogLine): LogLineRef => ({ lineId: line.lineId, timestamp: line.timestamp, text: line.text });

/**
 * The time range of `from`/`to` inputs, both ends inclusive.
 * @throws ToolError when `from` is after `to`.
 */
function toRange(input: { from?: string | undefined; to?: string | undefined }): TimeRange {
  const fromMs = input.from === undefined ? undefined : Date.parse(input.from);
  const toMs = input.to === undefined ? undefined : Date.parse(input.to);
  if (fromMs !== undefined && toMs !== undefined && fromMs > toMs) {
    throw new ToolError(`"from" (${input.from}) is after "to" (${input.to}); give from <= to.`);
  }
  return { fromMs, toMs };
}

// ---------------------------------------------------------------------------
// search_log_lines
// ---------------------------------------------------------------------------

/** Longest accepted `pattern`, characters: keeps patterns (and their backtracking) small. */
export const MAX_PATTERN_LENGTH = 500;

/**
 * Input of `search_log_lines`.
 * Example: `{"pattern":"Failed password .* from 183\\.62\\.140\\.253 ","from":"2024-12-10T11:00:00Z","limit":5}`
 */
export const SearchLogLinesInputSchema = z.object({
  pattern: z
    .string()
    .min(1)
    .max(MAX_PATTERN_LENGTH)
    .describe(
      'JavaScript regular expression, matched case-insensitively against each whole line (timestamp, host and sshd[pid] included). Escape dots in addresses: 183\\.62\\.140\\.253',
    ),
  from: isoInput('Only lines at or after this time').optional(),
  to: isoInput('Only lines at or before this time').optional(),
  limit: z.number().int().min(1).max(200).default(50).describe('How many matching lines to return (the first ones); default 50'),
});
export type SearchLogLinesInput = z.infer<typeof SearchLogLinesInputSchema>;

/**
 * Output of `search_log_lines`.
 * Example: `{"total":286,"lines":[{"lineId":1024,"timestamp":"2024-12-10T10:54:29Z","text":"..."}],"truncated":true}`
 */
export const SearchLogLinesOutputSchema = z.object({
  total: z.number().int().nonnegative().describe('Number of matching lines in the range'),
  lines: z.array(LogLineRefSchema).describe('The first `limit` matching lines, in log order'),
  truncated: z.boolean().describe('Whether more lines matched than were returned'),
});
export type SearchLogLinesOutput = z.infer<typeof SearchLogLinesOutputSchema>;

/**
 * `search_log_lines`: lines of the log matching a regular expression, optionally in a time range.
 * @throws ToolError when the pattern is not a valid regular expression, or `from` is after `to`.
 */
export const searchLogLines = defineTool({
  name: 'search_log_lines',
  tags: ['read-only', 'sshd-log'],
  classification: 'confidential',
  // Reads the log only.
  idempotent: true,
  version: '1.0.0',
  description:
    "Searches the instance's sshd log (host LabSZ, one day, about 2,000 lines) for lines matching a case-insensitive regular expression, optionally between two times. Returns the number of matches and the first `limit` lines with their line ids.",
  input: SearchLogLinesInputSchema,
  output: SearchLogLinesOutputSchema,
  handler: async (input) => {
    let pattern: RegExp;
    try {
      pattern = new RegExp(input.pattern, 'i');
    } catch (err) {
      throw new ToolError(`pattern ${JSON.stringify(input.pattern)} is not a valid regular expression: ${(err as Error).message}`);
    }
    const found = searchLines(LOG, pattern, toRange(input), input.limit);
    return { total: found.total, lines: found.lines.map(toRef), truncated: found.total > found.lines.length };
  },
});

// ---------------------------------------------------------------------------
// count_failed_attempts
// ---------------------------------------------------------------------------

/**
 * Input of `count_failed_attempts`.
 * Example: `{"minAttempts":10}`
 */
export const CountFailedAttemptsInputSchema = z.object({
  from: isoInput('Only attempts at or after this time').optional(),
  to: isoInput('Only attempts at or before this time').optional(),
  minAttempts: z
    .number()
    .int()
    .min(1)
    .default(1)
    .describe('List only source addresses with at least this many failed attempts in the range; default 1'),
});
export type CountFailedAttemptsInput = z.infer<typeof CountFailedAttemptsInputSchema>;

/**
 * Output of `count_failed_attempts`.
 * Example: `{"window":{"from":"2024-12-10T06:55:48Z","to":"2024-12-10T11:04:45Z"},"totalFailedAttempts":528,"sources":[{"address":"183.62.140.253","attempts":286,"firstSeen":"2024-12-10T10:54:29Z","lastSeen":"2024-12-10T11:04:43Z","sampleLineIds":[1024,1030,1033,1036,1039]}]}`
 */
export const CountFailedAttemptsOutputSchema = z.object({
  window: z
    .object({
      from: z.iso.datetime().describe('Time of the first failed attempt in the range, ISO 8601 UTC'),
      to: z.iso.datetime().describe('Time of the last failed attempt in the range, ISO 8601 UTC'),
    })
    .nullable()
    .describe('Span of the failed attempts counted; null when there is none'),
  totalFailedAttempts: z
    .number()
    .int()
    .nonnegative()
    .describe('Failed attempts in the range from all addresses, including those below minAttempts'),
  sources: z
    .array(
      z.object({
        address: z.ipv4().describe('Source IPv4 address'),
        attempts: z.number().int().positive().describe('Its failed attempts in the range'),
        firstSeen: z.iso.datetime().describe('Its first failed attempt, ISO 8601 UTC'),
        lastSeen: z.iso.datetime().describe('Its last failed attempt, ISO 8601 UTC'),
        sampleLineIds: z
          .array(z.number().int().positive())
          .max(SAMPLE_LINE_IDS)
          .describe(`Line ids of its first (up to ${SAMPLE_LINE_IDS}) failed attempts`),
      }),
    )
    .describe('Addresses with at least minAttempts attempts, most attempts first'),
});
export type CountFailedAttemptsOutput = z.infer<typeof CountFailedAttemptsOutputSchema>;

/**
 * `count_failed_attempts`: failed SSH login attempts by source address. A failed
 * attempt is one rejected password: a `Failed password ...` line counts 1, a
 * `message repeated N times: [ Failed password ...]` line counts N; the other
 * lines about the same guess, and `Failed none` probes, are not counted (see
 * {@link import('./log').failedAttemptsOf}).
 * @throws ToolError when `from` is after `to`.
 */
export const countFailedAttempts = defineTool({
  name: 'count_failed_attempts',
  tags: ['read-only', 'sshd-log'],
  classification: 'confidential',
  // Reads the log only.
  idempotent: true,
  version: '1.0.0',
  description:
    'Counts failed SSH login attempts in the sshd log by source address, optionally between two times. One attempt = one password sshd rejected ("Failed password" lines; "message repeated N times" counts N). The companion lines of the same guess (Invalid user, pam_unix authentication failure, PAM ... more authentication failures) and "Failed none" probes are not counted. Returns the span and total of the attempts and, per address with at least minAttempts, its count, first and last attempt and sample line ids.',
  input: CountFailedAttemptsInputSchema,
  output: CountFailedAttemptsOutputSchema,
  handler: async (input) => summariseFailedAttempts(LOG, toRange(input), input.minAttempts),
});

// ---------------------------------------------------------------------------
// show_log_lines
// ---------------------------------------------------------------------------

/**
 * Input of `show_log_lines`.
 * Example: `{"lineIds":[1024,1997]}`
 */
export const ShowLogLinesInputSchema = z.object({
  lineIds: z.array(z.number().int().positive()).min(1).max(50).describe('Line ids to show (1 to 50 of them)'),
});
export type ShowLogLinesInput = z.infer<typeof ShowLogLinesInputSchema>;

/**
 * Output of `show_log_lines`.
 * Example: `{"lines":[{"lineId":1024,"timestamp":"2024-12-10T10:54:29Z","text":"..."}]}`
 */
export const ShowLogLinesOutputSchema = z.object({
  lines: z.array(LogLineRefSchema).describe('The lines, in the order asked for, each id once'),
});
export type ShowLogLinesOutput = z.infer<typeof ShowLogLinesOutputSchema>;

/**
 * `show_log_lines`: given lines of the log by id.
 * @throws ToolError naming every id that is not a line of the log.
 */
export const showLogLines = defineTool({
  name: 'show_log_lines',
  tags: ['read-only', 'sshd-log'],
  classification: 'confidential',
  // Reads the log only.
  idempotent: true,
  version: '1.0.0',
  description: 'Shows lines of the sshd log by line id (as returned by the other tools), with their timestamps.',
  input: ShowLogLinesInputSchema,
  output: ShowLogLinesOutputSchema,
  handler: async (input) => {
    const ids = [...new Set(input.lineIds)];
    const unknown = ids.filter((id) => !LOG_BY_ID.has(id));
    if (unknown.length > 0) {
      throw new ToolError(`no line with id ${unknown.join(', ')}: the log has lines 1 to ${LOG.length}`);
    }
    return { lines: ids.map((id) => toRef(LOG_BY_ID.get(id) as LogLine)) };
  },
});

// ---------------------------------------------------------------------------
// block_address
// ---------------------------------------------------------------------------

/** Environment variable naming the DynamoDB table of blocks (partition key `address`, string; TTL attribute `expiresAtEpoch`). */
export const BLOCKLIST_TABLE_ENV = 'BLOCKLIST_TABLE';

/** Longest block, minutes (30 days). */
export const MAX_BLOCK_MINUTES = 43_200;

/** Default block, minutes. */
export const DEFAULT_BLOCK_MINUTES = 60;

/**
 * Input of `block_address`.
 * Example: `{"address":"183.62.140.253","reason":"286 failed SSH passwords in 10 minutes","durationMinutes":1440}`
 */
export const BlockAddressInputSchema = z.object({
  address: z.ipv4().describe('IPv4 address to block'),
  reason: z.string().min(1).max(1000).describe('Why, with the evidence (counts, line ids); recorded with the block and shown to the approver'),
  durationMinutes: z
    .number()
    .int()
    .min(1)
    .max(MAX_BLOCK_MINUTES)
    .default(DEFAULT_BLOCK_MINUTES)
    .describe(`How long the block lasts, minutes (1 to ${MAX_BLOCK_MINUTES}); default ${DEFAULT_BLOCK_MINUTES}`),
});
export type BlockAddressInput = z.infer<typeof BlockAddressInputSchema>;

/**
 * Output of `block_address`: the block in force for the address.
 * Example: `{"address":"183.62.140.253","blockId":"blk_3f0c...","blockedAt":"2024-12-10T11:20:00.000Z","expiresAt":"2024-12-11T11:20:00.000Z","createdByThisCall":true}`
 */
export const BlockAddressOutputSchema = z.object({
  address: z.ipv4().describe('The blocked address'),
  blockId: z.string().describe('Id of the block in force'),
  blockedAt: z.iso.datetime().describe('When the block was recorded, ISO 8601 UTC'),
  expiresAt: z.iso.datetime().describe('When it lapses, ISO 8601 UTC'),
  createdByThisCall: z
    .boolean()
    .describe('false when the address was already blocked by another, unexpired block: that block is returned and nothing was changed'),
});
export type BlockAddressOutput = z.infer<typeof BlockAddressOutputSchema>;

/**
 * A block as stored: one item per address in the blocklist table.
 * Example: `{"address":"183.62.140.253","blockId":"blk_3f0c...","reason":"...","sessionId":"ses_...","callId":"toolu_04","blockedAt":"2024-12-10T11:20:00.000Z","expiresAt":"2024-12-11T11:20:00.000Z","expiresAtEpoch":1733916000}`
 */
export const BlockRecordSchema = z.object({
  address: z.ipv4(),
  /** {@link blockIdFor} of the call that created it. */
  blockId: z.string().min(1),
  reason: z.string(),
  sessionId: z.string(),
  callId: z.string(),
  /** ISO 8601 UTC. */
  blockedAt: z.iso.datetime(),
  /** ISO 8601 UTC. */
  expiresAt: z.iso.datetime(),
  /** `expiresAt` in seconds since the epoch: the table's TTL attribute. */
  expiresAtEpoch: z.number().int(),
  /** Who approved the call, when the runtime says. */
  approvedBy: z.string().optional(),
  approvalId: z.string().optional(),
});
export type BlockRecord = z.infer<typeof BlockRecordSchema>;

/** Where blocks are kept. */
export interface BlockStore {
  /**
   * Stores `record` unless the address already has a block that has not expired
   * at `nowEpochSeconds`. Never overwrites a live block, so a retried call keeps
   * its first `blockedAt`.
   * @returns the block in force afterwards: `record` when it was stored, else the stored one
   *   (which is the same call's own block when the call is retried).
   */
  putIfAbsent(record: BlockRecord, nowEpochSeconds: number): Promise<BlockRecord>;
}

/** The part of a DynamoDB document client a {@link createDynamoBlockStore} uses. */
export interface DocumentClientLike {
  send(command: PutCommand | GetCommand): Promise<unknown>;
}

/** `blk_` + 24 hex digits of SHA-256 of the call's idempotency key: the same call always gets the same id. */
export function blockIdFor(idempotencyKey: string): string {
  return `blk_${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 24)}`;
}

/**
 * A {@link BlockStore} on a DynamoDB table (partition key `address`): a PutItem
 * with `attribute_not_exists(address) OR expiresAtEpoch <= :now`; when that
 * condition fails, a consistent GetItem returns the live block. (An expired block
 * may linger until DynamoDB's TTL deletes it, hence the `expiresAtEpoch` term.)
 * @param tableName called on first use, so a missing variable fails the call, not the import
 * @throws TransientError when the live block vanishes between the put and the get twice running;
 *   ConditionalCheckFailed aside, the SDK's errors propagate unchanged.
 */
export function createDynamoBlockStore(client: DocumentClientLike, tableName: () => string): BlockStore {
  return {
    async putIfAbsent(record, nowEpochSeconds) {
      const table = tableName();
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          await client.send(
            new PutCommand({
              TableName: table,
              Item: record,
              ConditionExpression: 'attribute_not_exists(#address) OR #expiresAtEpoch <= :now',
              ExpressionAttributeNames: { '#address': 'address', '#expiresAtEpoch': 'expiresAtEpoch' },
              ExpressionAttributeValues: { ':now': nowEpochSeconds },
            }),
          );
          return record;
        } catch (err) {
          if ((err as Error | undefined)?.name !== 'ConditionalCheckFailedException') throw err;
        }
        const got = (await client.send(
          new GetCommand({ TableName: table, Key: { address: record.address }, ConsistentRead: true }),
        )) as { Item?: unknown };
        if (got.Item !== undefined) return BlockRecordSchema.parse(got.Item);
      }
      throw new TransientError(`block of ${record.address}: the stored block changed while it was being read; try again`);
    },
  };
}

/**
 * Builds `block_address` on a store; the exported {@link blockAddress} uses DynamoDB.
 * Idempotent per call: the block id is {@link blockIdFor}(the call's idempotency key), and
 * a retried call finds and returns its own block. When the address is already
 * blocked by another live block, that block is returned with
 * `createdByThisCall: false` rather than failing: the address is blocked either way.
 * @param now the clock (injectable for tests)
 */
export function createBlockAddressTool(store: BlockStore, now: () => Date = () => new Date()) {
  return defineTool({
    name: 'block_address',
    version: '1.0.0',
    description:
      'Blocks an IPv4 address from reaching the instance for a time (records it on the blocklist). A human must approve each call; the result says whether it was approved. Give the evidence in the reason. If the address is already blocked, returns the existing block.',
    input: BlockAddressInputSchema,
    output: BlockAddressOutputSchema,
    needsApproval: true,
    tags: ['network-change'],
    // At most one block per investigation: a second call is refused without running.
    budget: { callsPerSession: 1 },
    // Keyed on ToolContext.idempotencyKey: a repeated call finds its block and creates no second one.
    idempotent: true,
    handler: async (input: BlockAddressInput, context: ToolContext): Promise<BlockAddressOutput> => {
      const nowMs = now().getTime();
      const expiresMs = nowMs + input.durationMinutes * 60_000;
      const record: BlockRecord = {
        address: input.address,
        blockId: blockIdFor(context.idempotencyKey),
        reason: input.reason,
        sessionId: context.sessionId,
        callId: context.callId,
        blockedAt: new Date(nowMs).toISOString(),
        expiresAt: new Date(expiresMs).toISOString(),
        expiresAtEpoch: Math.floor(expiresMs / 1000),
        ...(context.approval?.decidedBy === undefined ? {} : { approvedBy: context.approval.decidedBy }),
        ...(context.approval?.approvalId === undefined ? {} : { approvalId: context.approval.approvalId }),
      };
      const live = await store.putIfAbsent(record, Math.floor(nowMs / 1000));
      return {
        address: live.address,
        blockId: live.blockId,
        blockedAt: live.blockedAt,
        expiresAt: live.expiresAt,
        createdByThisCall: live.blockId === record.blockId,
      };
    },
  });
}

let blocklistTable: string | undefined;
/** The blocklist table's name, read once. @throws ConfigurationError naming {@link BLOCKLIST_TABLE_ENV} when unset. */
const blocklistTableName = (): string => (blocklistTable ??= requireEnv(BLOCKLIST_TABLE_ENV));

/**
 * `block_address` (needs approval): records a block of an address in the
 * DynamoDB table named by `BLOCKLIST_TABLE` (no firewall is changed).
 * @throws ConfigurationError when `BLOCKLIST_TABLE` is unset.
 */
const lazyClient: DocumentClientLike = {
  send: (command) => (command instanceof PutCommand ? documentClient().send(command) : documentClient().send(command)),
};
export const blockAddress = createBlockAddressTool(createDynamoBlockStore(lazyClient, blocklistTableName));

/** The agent's tools. */
export const tools = [searchLogLines, countFailedAttempts, showLogLines, blockAddress] as const;
