/**
 * An in-memory {@link StepStore} with the semantics of the DynamoDB
 * {@link CheckpointStore} (lambdas/adapters/checkpoint-store.ts):
 *
 * - items are stored as DynamoDB would keep them (JSON, `undefined` attributes
 *   removed, as the document client's `removeUndefinedValues` does) and parsed
 *   with the stored-record schemas on every read (`StoredCheckpointRecordSchema`,
 *   `StoredSessionRecordSchema`: version 1 records are upgraded in memory),
 *   unsupported schema versions rejected with CorruptCheckpointError;
 * - `createSession` and `putCheckpoint` are conditional creates
 *   (`attribute_not_exists(sk)`): a second call stores nothing and returns the
 *   record stored first, with `created: false`;
 * - `putCheckpoint` validates the record with CheckpointRecordSchema before writing;
 *   with a `fence` (an execution ARN) it writes only while the head's
 *   `executionArn` is the fence and its status RUNNING, and otherwise throws
 *   SessionFencedError, unless the checkpoint already exists (then it returns it,
 *   as the real store does after a cancelled transaction);
 * - `listCheckpoints` returns the `CP#` records of a session in sort-key order
 *   (DynamoDB compares string keys by UTF-8 bytes): not the head, the `EXEC#`,
 *   `ROLLBACK#` or `ABANDONED#` records;
 * - `recordStep` moves the head's step forward only (and ignores a missing head:
 *   the real store swallows the failed condition); `markSucceeded` is fenced:
 *   the head must exist, belong to the execution and be RUNNING (or already
 *   SUCCEEDED), SessionFencedError otherwise;
 * - `takeOver` is the conditional update of a continuation (head of the parent
 *   execution, status among `fromStatuses`), `cancel` the API's conditional cancel
 *   (RUNNING or PAUSED_BUDGET), `reopen` the conditional FAILED → RUNNING of a
 *   session before its execution is redriven (same execution, failure removed, the
 *   removed failure returned);
 * - budgets: `pause` is the transaction of RUNNING → PAUSED_BUDGET of the owning
 *   execution (while the budget's limit is still the pause's) with the Put of the
 *   pause's wait (its approval record, kept in `waits`): `paused`, `already` for a
 *   retry of the same wait, `raised` when the limit changed meanwhile (nothing
 *   written); `setBudgets` the raise (conditional on the head as read; a paused
 *   session resumes, its paused time added up), `stop` the conditional
 *   PAUSED_BUDGET → STOPPED of the pause as read;
 * - `rollBack` moves the head to a new branch (conditional on its execution and the
 *   branch before), moves the abandoned checkpoints to `ABANDONED#<branch>#<sk>` and
 *   writes the `ROLLBACK#` record; `listAbandoned` returns the moved ones;
 * - an item larger than DynamoDB's 400 KB is refused (ValidationException), its
 *   size taken as the UTF-8 bytes of its JSON (a little above DynamoDB's count).
 */
import type { NewCheckpoint } from '../../../lambdas/adapters/checkpoint-store';
import { CHECKPOINT_SCHEMA_VERSION } from '../../../lambdas/core/constants';
import {
  ABANDONED_SK_PREFIX,
  NOTICE_SK_PREFIX,
  CHECKPOINT_SK_PREFIX,
  checkpointKey,
  CheckpointRecordSchema,
  SESSION_SK,
  newSessionRecord,
  parseStoredRecord,
  StoredCheckpointRecordSchema,
  StoredSessionRecordSchema,
  type Cancellation,
  type CheckpointRecord,
  type RollbackRecord,
  type SessionRecord,
  type SessionStatus,
} from '../../../lambdas/core/contracts/checkpoint';
import { SessionFencedError } from '../../../lambdas/core/errors';
import type { StepStore } from '../../../lambdas/handlers/agent/deps';

type Item = Record<string, unknown>;

/** What DynamoDB keeps of an item: JSON values, no undefined attributes. */
const stored = (item: unknown): Item => JSON.parse(JSON.stringify(item)) as Item;

/** DynamoDB's item size limit (400 KB). */
export const MAX_ITEM_BYTES = 400 * 1024;

/** The error DynamoDB answers a write of a too large item with. */
export class ItemTooLargeError extends Error {
  override readonly name = 'ValidationException';
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

export class MemoryCheckpointStore implements StepStore {
  /** sessionId → sk → item. */
  private readonly items = new Map<string, Map<string, Item>>();
  /** Every write that stored something, in order (`put`, `update` or `delete`, with the key). */
  readonly writes: Array<{ op: 'put' | 'update' | 'delete'; sessionId: string; sk: string }> = [];
  /** The waits `pause` put with its pauses (approval records, in another table), by approval id. */
  readonly waits = new Map<string, { tableName: string; item: Item }>();
  /** Sort keys whose next putCheckpoint fails (a write lost to a crash or a network error). */
  private readonly lost = new Set<string>();

  constructor(private readonly now: () => Date = () => new Date('2024-12-10T11:10:07.000Z')) {}

  async createSession(props: Parameters<typeof newSessionRecord>[0]): Promise<{ created: boolean; session: SessionRecord }> {
    const session = newSessionRecord(props, this.now().toISOString());
    const existing = await this.getSession(props.sessionId);
    if (existing) return { created: false, session: existing };
    this.write('put', session);
    return { created: true, session };
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const item = this.item(sessionId, SESSION_SK);
    return item ? parseStoredRecord(item, StoredSessionRecordSchema) : undefined;
  }

  async putCheckpoint<T extends NewCheckpoint>(checkpoint: T, fence?: string): Promise<{ created: boolean; record: CheckpointRecord }> {
    if (this.lost.delete(checkpoint.sk)) throw new Error(`lost write of ${checkpoint.sk} (injected by the test)`);
    const record = { ...checkpoint, schemaVersion: CHECKPOINT_SCHEMA_VERSION, createdAt: this.now().toISOString() };
    const parsed = CheckpointRecordSchema.parse(record);
    // An earlier attempt's record wins, fenced or not.
    const existing = await this.getCheckpoint(checkpoint.sessionId, checkpoint.sk);
    if (existing) return { created: false, record: existing };
    if (fence !== undefined) {
      const head = this.item(checkpoint.sessionId, SESSION_SK);
      if (head?.executionArn !== fence || head.status !== 'RUNNING') {
        throw new SessionFencedError(`execution ${fence} no longer owns session ${checkpoint.sessionId}; ${checkpoint.sk} was not written`);
      }
    }
    this.write('put', parsed);
    return { created: true, record: parsed };
  }

  async getCheckpoint(sessionId: string, sk: string): Promise<CheckpointRecord | undefined> {
    const item = this.item(sessionId, sk);
    return item ? parseStoredRecord(item, StoredCheckpointRecordSchema) : undefined;
  }

  async listCheckpoints(sessionId: string): Promise<CheckpointRecord[]> {
    return this.listByPrefix(sessionId, CHECKPOINT_SK_PREFIX);
  }

  async listAbandoned(sessionId: string): Promise<CheckpointRecord[]> {
    return this.listByPrefix(sessionId, ABANDONED_SK_PREFIX);
  }

  async listNotices(sessionId: string): Promise<CheckpointRecord[]> {
    return this.listByPrefix(sessionId, NOTICE_SK_PREFIX);
  }

  private listByPrefix(sessionId: string, prefix: string): CheckpointRecord[] {
    const session = this.items.get(sessionId) ?? new Map<string, Item>();
    return [...session.entries()]
      .filter(([sk]) => sk.startsWith(prefix))
      .sort(([a], [b]) => byteOrder(a, b))
      .map(([, item]) => parseStoredRecord(item, StoredCheckpointRecordSchema));
  }

  async recordStep(sessionId: string, step: number): Promise<void> {
    const head = this.item(sessionId, SESSION_SK);
    if (!head) return; // attribute_exists(sk) failed: swallowed, as the real store does
    if (typeof head.step === 'number' && head.step > step) return; // step <= :step failed: swallowed
    this.write('update', { ...head, step, updatedAt: this.now().toISOString() });
  }

  async markSucceeded(sessionId: string, step: number, output: unknown, executionArn: string): Promise<void> {
    const head = this.item(sessionId, SESSION_SK);
    if (head?.executionArn !== executionArn || (head.status !== 'RUNNING' && head.status !== 'SUCCEEDED')) {
      throw new SessionFencedError(`execution ${executionArn} no longer owns session ${sessionId} (or it was cancelled); not marked SUCCEEDED`);
    }
    this.write('update', { ...head, status: 'SUCCEEDED', step, output, updatedAt: this.now().toISOString() });
  }

  async takeOver(props: {
    sessionId: string;
    executionArn: string;
    parentExecutionArn: string;
    execution: number;
    fromStatuses: readonly SessionStatus[];
  }): Promise<SessionRecord | undefined> {
    if (props.fromStatuses.length === 0) return undefined;
    const head = this.item(props.sessionId, SESSION_SK);
    if (head?.executionArn !== props.parentExecutionArn || !props.fromStatuses.includes(head.status as SessionStatus)) return undefined;
    const kept = { ...head };
    delete kept.failure;
    delete kept.output;
    this.write('update', {
      ...kept,
      executionArn: props.executionArn,
      parentExecutionArn: props.parentExecutionArn,
      status: 'RUNNING',
      updatedAt: this.now().toISOString(),
      schemaVersion: CHECKPOINT_SCHEMA_VERSION,
      branch: typeof head.branch === 'number' ? head.branch : 0,
      executions: props.execution,
    });
    return this.getSession(props.sessionId);
  }

  /**
   * Cancels a RUNNING or budget-paused session (as `CheckpointStore.cancel`): status CANCELLED with why.
   * @returns the head as it was before, or undefined when it was neither (nothing written).
   */
  async cancel(sessionId: string, cancellation: Omit<Cancellation, 'at'>): Promise<SessionRecord | undefined> {
    const head = this.item(sessionId, SESSION_SK);
    if (head?.status !== 'RUNNING' && head?.status !== 'PAUSED_BUDGET') return undefined;
    const before = parseStoredRecord(head, StoredSessionRecordSchema);
    const at = this.now().toISOString();
    this.write('update', {
      ...head,
      status: 'CANCELLED',
      cancellation: { ...cancellation, at },
      updatedAt: at,
      schemaVersion: CHECKPOINT_SCHEMA_VERSION,
      executions: typeof head.executions === 'number' ? head.executions : 1,
      branch: typeof head.branch === 'number' ? head.branch : 0,
    });
    return before;
  }

  /**
   * Reopens a FAILED session for its own execution (as `CheckpointStore.reopen`, before a
   * redrive): status RUNNING, the failure removed, only while the head's execution is
   * `executionArn` and its status FAILED.
   * @returns the failure it removed, or undefined when the condition failed (nothing written).
   */
  async reopen(sessionId: string, executionArn: string): Promise<SessionRecord['failure'] | undefined> {
    const head = this.item(sessionId, SESSION_SK);
    if (head?.executionArn !== executionArn || head.status !== 'FAILED') return undefined;
    const before = parseStoredRecord(head, StoredSessionRecordSchema);
    const kept = { ...head };
    delete kept.failure;
    this.write('update', {
      ...kept,
      status: 'RUNNING',
      updatedAt: this.now().toISOString(),
      schemaVersion: CHECKPOINT_SCHEMA_VERSION,
      executions: typeof head.executions === 'number' ? head.executions : 1,
      branch: typeof head.branch === 'number' ? head.branch : 0,
    });
    return before.failure;
  }

  /**
   * Pauses the session on a used-up budget for `executionArn` (as `CheckpointStore.pause`),
   * in one transaction with the Put of `wait` (kept in {@link waits}): RUNNING →
   * PAUSED_BUDGET with the pause, the pause count incremented; conditional on the
   * execution, on RUNNING and on the budget's limit being absent or `pause.limit`.
   * When the condition fails nothing is written, and the head read again tells why.
   * @returns `paused`; `already` when the head holds this very pause (a retry);
   *   `raised` when the head is RUNNING under this execution with another limit
   * @throws SessionFencedError otherwise (another execution, not RUNNING, paused by another wait, no head).
   */
  async pause(
    sessionId: string,
    executionArn: string,
    pause: NonNullable<SessionRecord['pause']>,
    wait: { readonly TableName: string; readonly Item: Record<string, unknown> },
  ): Promise<'paused' | 'already' | 'raised'> {
    const head = this.item(sessionId, SESSION_SK);
    const budgets = (head?.budgets ?? {}) as Record<string, unknown>;
    const limitHolds = budgets[pause.budget] === undefined || budgets[pause.budget] === pause.limit;
    if (head?.executionArn === executionArn && head.status === 'RUNNING' && limitHolds) {
      const pauses = (typeof head.pauses === 'number' ? head.pauses : 0) + 1;
      const waitItem = stored(wait.Item);
      const approvalId = waitItem.approvalId;
      if (typeof approvalId !== 'string') throw new Error('pause: the wait needs an approvalId');
      this.write('update', { ...this.upgraded(head), status: 'PAUSED_BUDGET', pause, pauses, updatedAt: this.now().toISOString() });
      this.waits.set(approvalId, { tableName: wait.TableName, item: waitItem });
      return 'paused';
    }
    const current = head ? parseStoredRecord(head, StoredSessionRecordSchema) : undefined;
    if (current?.executionArn === executionArn && current.status === 'PAUSED_BUDGET' && current.pause?.approvalId === pause.approvalId) return 'already';
    if (current?.executionArn === executionArn && current.status === 'RUNNING' && current.budgets?.[pause.budget] !== pause.limit) return 'raised';
    throw new SessionFencedError(`execution ${executionArn} no longer owns session ${sessionId} (or it is not RUNNING); not paused`);
  }

  /**
   * Rolls the session back (as `CheckpointStore.rollBack`): the head gets the new branch
   * and step `toStep`, conditional on its execution being the one read and its branch the
   * one before; the abandoned checkpoints move to `ABANDONED#<branch>#<sk>` (with
   * `abandonedBy` and `abandonedAt`); the `ROLLBACK#` record is written.
   * @returns false when the condition failed (nothing written).
   */
  async rollBack(session: SessionRecord, rollback: Omit<RollbackRecord, 'schemaVersion' | 'createdAt' | 'sk' | 'kind' | 'sessionId'>): Promise<boolean> {
    const { sessionId } = session;
    const head = this.item(sessionId, SESSION_SK);
    const branch = typeof head?.branch === 'number' ? head.branch : 0;
    if (!head || head.executionArn !== session.executionArn || branch !== rollback.branch - 1) return false;
    const at = this.now().toISOString();
    this.write('update', { ...this.upgraded(head), branch: rollback.branch, step: rollback.toStep, updatedAt: at });
    for (const sk of rollback.abandoned) {
      const item = this.item(sessionId, sk);
      if (!item) continue;
      this.write('put', { ...item, sk: checkpointKey.abandoned(rollback.branch, sk), abandonedBy: rollback.branch, abandonedAt: at });
      this.sessionItems(sessionId).delete(sk);
      this.writes.push({ op: 'delete', sessionId, sk });
    }
    await this.putCheckpoint({ ...rollback, sessionId, sk: checkpointKey.rollback(rollback.branch), kind: 'rollback' });
    return true;
  }

  /**
   * Sets the session's budgets (as `CheckpointStore.setBudgets`); a PAUSED_BUDGET session
   * becomes RUNNING, its paused seconds added to `pausedSeconds` and its pause removed.
   * Conditional on the head as read: its status (and pause).
   * @returns `head`, or undefined when it is neither RUNNING nor PAUSED_BUDGET or the stored head differs (nothing written).
   */
  async setBudgets(head: SessionRecord, budgets: NonNullable<SessionRecord['budgets']>): Promise<SessionRecord | undefined> {
    if (head.status !== 'RUNNING' && head.status !== 'PAUSED_BUDGET') return undefined;
    const now = this.now();
    const current = this.item(head.sessionId, SESSION_SK);
    const resume = head.status === 'PAUSED_BUDGET' ? head.pause : undefined;
    if (current?.status !== head.status) return undefined;
    if (resume && (current.pause as { approvalId?: unknown } | undefined)?.approvalId !== resume.approvalId) return undefined;
    const updated: Item = { ...this.upgraded(current), budgets, updatedAt: now.toISOString() };
    if (resume) {
      const pausedFor = Math.max(0, (now.getTime() - Date.parse(resume.at)) / 1000);
      updated.status = 'RUNNING';
      updated.pausedSeconds = (typeof current.pausedSeconds === 'number' ? current.pausedSeconds : 0) + pausedFor;
      delete updated.pause;
    }
    this.write('update', updated);
    return head;
  }

  /**
   * Stops a PAUSED_BUDGET session (as `CheckpointStore.stop`): status STOPPED with why;
   * conditional on the pause as read.
   * @returns `head`, or undefined when it was not paused by that pause (nothing written).
   */
  async stop(head: SessionRecord, stop: Omit<NonNullable<SessionRecord['stop']>, 'at'>): Promise<SessionRecord | undefined> {
    if (head.status !== 'PAUSED_BUDGET' || !head.pause) return undefined;
    const current = this.item(head.sessionId, SESSION_SK);
    if (current?.status !== 'PAUSED_BUDGET' || (current.pause as { approvalId?: unknown } | undefined)?.approvalId !== head.pause.approvalId) return undefined;
    const at = this.now().toISOString();
    this.write('update', { ...this.upgraded(current), status: 'STOPPED', stop: { ...stop, at }, updatedAt: at });
    return head;
  }

  /** Makes the next putCheckpoint of `sk` fail before storing anything, as a crash between a step's work and its checkpoint would. */
  loseNextPut(sk: string): void {
    this.lost.add(sk);
  }

  /** Stores an item as is, bypassing every check: for records an older (or broken) build wrote. */
  seed(item: Item): void {
    const { sessionId, sk } = item;
    if (typeof sessionId !== 'string' || typeof sk !== 'string') throw new Error('seed: an item needs sessionId and sk');
    this.sessionItems(sessionId).set(sk, stored(item));
  }

  /** Changes attributes of a stored item as is (another writer: a control request, another execution). */
  patch(sessionId: string, sk: string, attributes: Item): void {
    const item = this.item(sessionId, sk);
    if (!item) throw new Error(`patch: no item ${sessionId}/${sk}`);
    this.write('update', { ...item, ...attributes });
  }

  /** The raw items of a session, by sort key. */
  dump(sessionId: string): Record<string, Item> {
    return Object.fromEntries([...(this.items.get(sessionId) ?? new Map<string, Item>()).entries()].sort(([a], [b]) => byteOrder(a, b)));
  }

  /** A head item with the attributes every update adds to a version 1 head (`UPGRADE_HEAD` of the real store). */
  private upgraded(head: Item): Item {
    return {
      ...head,
      schemaVersion: CHECKPOINT_SCHEMA_VERSION,
      executions: typeof head.executions === 'number' ? head.executions : 1,
      branch: typeof head.branch === 'number' ? head.branch : 0,
    };
  }

  private item(sessionId: string, sk: string): Item | undefined {
    const item = this.items.get(sessionId)?.get(sk);
    return item ? stored(item) : undefined;
  }

  private sessionItems(sessionId: string): Map<string, Item> {
    let session = this.items.get(sessionId);
    if (!session) {
      session = new Map<string, Item>();
      this.items.set(sessionId, session);
    }
    return session;
  }

  private write(op: 'put' | 'update', item: Item): void {
    const { sessionId, sk } = item;
    if (typeof sessionId !== 'string' || typeof sk !== 'string') throw new Error('an item needs sessionId and sk');
    const bytes = Buffer.byteLength(JSON.stringify(item));
    if (bytes > MAX_ITEM_BYTES) throw new ItemTooLargeError(`Item size has exceeded the maximum allowed size (${sessionId}/${sk}: ${bytes} bytes)`);
    this.sessionItems(sessionId).set(sk, stored(item));
    this.writes.push({ op, sessionId, sk });
  }
}
