/**
 * An in-memory {@link StepStore} with the semantics of the DynamoDB
 * {@link CheckpointStore} (lambdas/adapters/checkpoint-store.ts):
 *
 * - items are stored as DynamoDB would keep them (JSON, `undefined` attributes
 *   removed, as the document client's `removeUndefinedValues` does) and parsed
 *   with the schemas on every read, unsupported schema versions rejected with
 *   CorruptCheckpointError;
 * - `createSession` and `putCheckpoint` are conditional creates
 *   (`attribute_not_exists(sk)`): a second call stores nothing and returns the
 *   record stored first, with `created: false`;
 * - `putCheckpoint` validates the record with CheckpointRecordSchema before writing;
 * - `listCheckpoints` returns the `CP#` records of a session in sort-key order
 *   (DynamoDB compares string keys by UTF-8 bytes);
 * - `recordStep` moves the head's step forward only (and ignores a missing head:
 *   the real store swallows the failed condition); `markSucceeded` needs the
 *   head (ConditionalCheckFailedException otherwise).
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { NewCheckpoint } from '../../../lambdas/adapters/checkpoint-store';
import { CHECKPOINT_SCHEMA_VERSION } from '../../../lambdas/core/constants';
import {
  CHECKPOINT_SK_PREFIX,
  CheckpointRecordSchema,
  SESSION_SK,
  newSessionRecord,
  parseStoredRecord,
  SessionRecordSchema,
  type CheckpointRecord,
  type SessionRecord,
  type TriggerInfo,
} from '../../../lambdas/core/contracts/checkpoint';
import type { StepStore } from '../../../lambdas/handlers/agent/deps';

type Item = Record<string, unknown>;

const conditionFailed = (): ConditionalCheckFailedException =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

/** What DynamoDB keeps of an item: JSON values, no undefined attributes. */
const stored = (item: unknown): Item => JSON.parse(JSON.stringify(item)) as Item;

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

export class MemoryCheckpointStore implements StepStore {
  /** sessionId → sk → item. */
  private readonly items = new Map<string, Map<string, Item>>();
  /** Every write that stored something, in order (`put` or `update`, with the key). */
  readonly writes: Array<{ op: 'put' | 'update'; sessionId: string; sk: string }> = [];

  constructor(private readonly now: () => Date = () => new Date('2024-12-10T11:10:07.000Z')) {}

  async createSession(props: { sessionId: string; agent: string; executionArn: string; trigger: TriggerInfo }): Promise<{ created: boolean; session: SessionRecord }> {
    const session = newSessionRecord(props, this.now().toISOString());
    if (this.item(props.sessionId, SESSION_SK)) {
      const existing = await this.getSession(props.sessionId);
      if (!existing) throw conditionFailed();
      return { created: false, session: existing };
    }
    this.write('put', session);
    return { created: true, session };
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const item = this.item(sessionId, SESSION_SK);
    return item ? parseStoredRecord(item, SessionRecordSchema) : undefined;
  }

  async putCheckpoint<T extends NewCheckpoint>(checkpoint: T): Promise<{ created: boolean; record: CheckpointRecord }> {
    const record = { ...checkpoint, schemaVersion: CHECKPOINT_SCHEMA_VERSION, createdAt: this.now().toISOString() };
    const parsed = CheckpointRecordSchema.parse(record);
    if (this.item(checkpoint.sessionId, checkpoint.sk)) {
      const existing = await this.getCheckpoint(checkpoint.sessionId, checkpoint.sk);
      if (!existing) throw conditionFailed();
      return { created: false, record: existing };
    }
    this.write('put', parsed);
    return { created: true, record: parsed };
  }

  async getCheckpoint(sessionId: string, sk: string): Promise<CheckpointRecord | undefined> {
    const item = this.item(sessionId, sk);
    return item ? parseStoredRecord(item, CheckpointRecordSchema) : undefined;
  }

  async listCheckpoints(sessionId: string): Promise<CheckpointRecord[]> {
    const session = this.items.get(sessionId) ?? new Map<string, Item>();
    return [...session.entries()]
      .filter(([sk]) => sk.startsWith(CHECKPOINT_SK_PREFIX))
      .sort(([a], [b]) => byteOrder(a, b))
      .map(([, item]) => parseStoredRecord(item, CheckpointRecordSchema));
  }

  async recordStep(sessionId: string, step: number): Promise<void> {
    const head = this.item(sessionId, SESSION_SK);
    if (!head) return; // attribute_exists(sk) failed: swallowed, as the real store does
    if (typeof head.step === 'number' && head.step > step) return; // step <= :step failed: swallowed
    this.write('update', { ...head, step, updatedAt: this.now().toISOString() });
  }

  async markSucceeded(sessionId: string, step: number, output: unknown): Promise<void> {
    const head = this.item(sessionId, SESSION_SK);
    if (!head) throw conditionFailed();
    this.write('update', { ...head, status: 'SUCCEEDED', step, output, updatedAt: this.now().toISOString() });
  }

  /** Stores an item as is, bypassing every check: for records an older (or broken) build wrote. */
  seed(item: Item): void {
    const { sessionId, sk } = item;
    if (typeof sessionId !== 'string' || typeof sk !== 'string') throw new Error('seed: an item needs sessionId and sk');
    this.sessionItems(sessionId).set(sk, stored(item));
  }

  /** The raw items of a session, by sort key. */
  dump(sessionId: string): Record<string, Item> {
    return Object.fromEntries([...(this.items.get(sessionId) ?? new Map<string, Item>()).entries()].sort(([a], [b]) => byteOrder(a, b)));
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
    this.sessionItems(sessionId).set(sk, stored(item));
    this.writes.push({ op, sessionId, sk });
  }
}
