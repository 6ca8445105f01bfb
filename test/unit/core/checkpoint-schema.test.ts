/**
 * The checkpoint format is versioned: records written by an older build must stay
 * readable. test/fixtures/checkpoints/v<N>/ holds realistic records of every kind
 * at schemaVersion N; every file there must parse with today's schema.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_SCHEMA_VERSION, SUPPORTED_CHECKPOINT_SCHEMA_VERSIONS } from '../../../lambdas/core/constants';
import { checkpointKey, CheckpointRecordSchema, type CheckpointRecord } from '../../../lambdas/core/contracts/checkpoint';
import { buildConversation } from '../../../lambdas/core/loop';

const CORPUS = join(__dirname, '../../fixtures/checkpoints');
const KINDS: ReadonlyArray<CheckpointRecord['kind']> = ['session', 'input', 'model', 'approval', 'tool'];

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
    return readdirSync(join(CORPUS, dir.name))
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => ({
        version: Number(match[1]),
        path: `${dir.name}/${f}`,
        raw: JSON.parse(readFileSync(join(CORPUS, dir.name, f), 'utf8')) as Record<string, unknown>,
      }));
  });

const parsedOf = (version: number): CheckpointRecord[] => corpus.filter((f) => f.version === version).map((f) => CheckpointRecordSchema.parse(f.raw));

describe('the checkpoint corpus', () => {
  it('has a folder for every supported schema version, each with one record of every kind', () => {
    const versions = [...new Set(corpus.map((f) => f.version))].sort();
    expect(versions).toEqual([...SUPPORTED_CHECKPOINT_SCHEMA_VERSIONS].sort());
    expect(versions).toContain(CHECKPOINT_SCHEMA_VERSION);
    for (const version of versions) {
      expect(new Set(corpus.filter((f) => f.version === version).map((f) => f.raw.kind))).toEqual(new Set(KINDS));
    }
  });

  it.each(corpus.map((f) => [f.path, f] as const))('reads %s with today\'s schema', (_path, file) => {
    const parsed = CheckpointRecordSchema.safeParse(file.raw);
    expect(parsed.success, parsed.success ? '' : parsed.error.message).toBe(true);
    expect(file.raw.schemaVersion).toBe(file.version);
    // Nothing the old record held is dropped on reading.
    expect(parsed.data).toEqual(file.raw);
  });

  it('rebuilds a conversation from the v1 records', () => {
    const messages = buildConversation(parsedOf(1));
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(messages[2]?.content).toEqual([expect.objectContaining({ type: 'tool_result', toolUseId: 'toolu_06', isError: false })]);
  });

  it('keys every v1 checkpoint by its kind and step', () => {
    for (const record of parsedOf(1)) {
      if (record.kind === 'session') expect(record.sk).toBe('SESSION');
      if (record.kind === 'input') expect(record.sk).toBe(checkpointKey.input());
      if (record.kind === 'model') expect(record.sk).toBe(checkpointKey.model(record.step));
      if (record.kind === 'approval') expect(record.sk).toBe(checkpointKey.approval(record.step, record.callId));
      if (record.kind === 'tool') expect(record.sk).toBe(checkpointKey.tool(record.step, record.callId));
    }
  });
});

describe('CheckpointRecordSchema', () => {
  const session = corpus.find((f) => f.raw.kind === 'session')?.raw ?? {};

  it.each([2, 0, '1', undefined])('fails when schemaVersion is %j', (schemaVersion) => {
    const parsed = CheckpointRecordSchema.safeParse({ ...session, schemaVersion });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.path.join('.'))).toContain('schemaVersion');
  });

  it('fails when the kind is unknown', () => {
    expect(CheckpointRecordSchema.safeParse({ ...session, kind: 'mystery' }).success).toBe(false);
  });
});

describe('checkpointKey', () => {
  it('sorts by step: step 2 before step 10, the input first', () => {
    const keys = [
      checkpointKey.tool(10, 'a'),
      checkpointKey.model(10),
      checkpointKey.model(2),
      checkpointKey.tool(2, 'z'),
      checkpointKey.approval(2, 'z'),
      checkpointKey.model(1),
      checkpointKey.input(),
    ];
    expect([...keys].sort()).toEqual([
      checkpointKey.input(),
      checkpointKey.model(1),
      checkpointKey.approval(2, 'z'),
      checkpointKey.model(2),
      checkpointKey.tool(2, 'z'),
      checkpointKey.model(10),
      checkpointKey.tool(10, 'a'),
    ]);
  });

  it('starts every checkpoint key with CP#', () => {
    for (const key of [checkpointKey.input(), checkpointKey.model(1), checkpointKey.approval(1, 'c'), checkpointKey.tool(1, 'c')]) expect(key.startsWith('CP#')).toBe(true);
  });
});
