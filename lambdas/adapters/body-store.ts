/**
 * Bodies stored by reference: tool results and model responses larger than the
 * inline limit go to the runtime's S3 bucket, and the checkpoint keeps a
 * {@link BodyRef} (bucket, key, bytes, SHA-256). Keys are content-addressed
 * (`<session>/<checkpoint key>/<sha256>.json`), so a retried write is harmless
 * and a body written by an abandoned branch is never overwritten.
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { BodyRef, ModelCheckpoint } from '../core/contracts/checkpoint';
import type { ModelResponse } from '../core/contracts/model';
import { CorruptCheckpointError } from '../core/errors';

/** Stores and loads bodies in one bucket. */
export class BodyStore {
  /**
   * @param inlineLimitBytes bodies up to this many bytes stay inline (see `DEFAULT_BODY_INLINE_LIMIT_BYTES`)
   */
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    readonly inlineLimitBytes: number,
  ) {}

  /** Whether `body` is too large to stay inline. */
  exceedsInline(body: string): boolean {
    return Buffer.byteLength(body) > this.inlineLimitBytes;
  }

  /** Stores `body` for the checkpoint `sk` of `sessionId`. @returns its reference */
  async put(sessionId: string, sk: string, body: string): Promise<BodyRef> {
    const sha256 = createHash('sha256').update(body).digest('hex');
    const key = `${sessionId}/${sk}/${sha256}.json`;
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/json', ChecksumAlgorithm: 'SHA256' }),
    );
    return { bucket: this.bucket, key, bytes: Buffer.byteLength(body), sha256 };
  }

  /**
   * Loads a body.
   * @throws CorruptCheckpointError when the object is missing or its SHA-256 differs from the reference's.
   */
  async get(ref: BodyRef): Promise<string> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
    const body = await out.Body?.transformToString('utf-8');
    if (body === undefined) throw new CorruptCheckpointError(`body s3://${ref.bucket}/${ref.key} is empty`);
    const sha256 = createHash('sha256').update(body).digest('hex');
    if (sha256 !== ref.sha256) throw new CorruptCheckpointError(`body s3://${ref.bucket}/${ref.key} has SHA-256 ${sha256}, the checkpoint says ${ref.sha256}`);
    return body;
  }
}

/** A model checkpoint with its response loaded from `bodies` when it is stored by reference. */
export async function withResponse(turn: ModelCheckpoint, bodies: Pick<BodyStore, 'get'>): Promise<ModelCheckpoint> {
  if (turn.response || !turn.responseRef) return turn;
  return { ...turn, response: JSON.parse(await bodies.get(turn.responseRef)) as ModelResponse };
}
