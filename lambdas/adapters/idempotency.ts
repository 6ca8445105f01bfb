/**
 * Idempotent model and tool calls through Powertools idempotency with its
 * DynamoDB persistence layer: a call retried or resumed after it completed
 * returns the recorded result instead of running again. While a call is in
 * progress (until the Lambda's remaining time runs out), another attempt with
 * the same key fails with `IdempotencyAlreadyInProgressError` (a fault: retried,
 * or resumed later); a call that throws leaves no record, so it may run again.
 */
import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import type { Context } from 'aws-lambda';
import { IDEMPOTENCY_RECORD_TTL_SECONDS } from '../core/constants';
import { dynamodbClient } from './clients';

/** Runs `fn` once per `key`; later calls with the key get the first call's result (JSON). */
export type Once = <T>(key: string, fn: () => Promise<T>) => Promise<T>;

/**
 * {@link Once}s backed by the idempotency table (`id` partition key, `expiration` TTL,
 * records kept {@link IDEMPOTENCY_RECORD_TTL_SECONDS}). The persistence layer and its
 * configuration are made once per Lambda instance; each invocation registers its context.
 * @returns for an invocation's context, its `Once`: the in-progress lock lasts the
 *   invocation's remaining time (without a context, until the record expires)
 */
export function powertoolsOnce(tableName: string): (context: Context | undefined) => Once {
  const persistenceStore = new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: dynamodbClient() });
  const config = new IdempotencyConfig({ eventKeyJmesPath: 'key', expiresAfterSeconds: IDEMPOTENCY_RECORD_TTL_SECONDS, throwOnNoIdempotencyKey: true });
  return (context) => {
    if (context) config.registerLambdaContext(context);
    return async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
      const call = makeIdempotent(async (_event: { key: string }) => fn(), { persistenceStore, config });
      return (await call({ key })) as T;
    };
  };
}
