/**
 * AWS SDK v3 clients, one of each per Lambda instance, traced by Powertools.
 * Created lazily so that a function bundles and builds only the clients it uses.
 * Endpoint, region and credentials come from the standard SDK configuration
 * (`AWS_ENDPOINT_URL`, `AWS_REGION`, ...): nothing here knows about emulators.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { tracer } from '../../observability/powertools';

/** DynamoDB requests of the current invocation, by operation (for the step's log line and the benchmark). */
const dynamodbRequests: Record<string, number> = {};

/**
 * The DynamoDB requests made since the last call (operation name → count), then
 * starts counting again. Every request of the shared clients is counted,
 * Powertools idempotency's included.
 */
export function takeDynamoDbRequests(): Record<string, number> {
  const taken = { ...dynamodbRequests };
  for (const k of Object.keys(dynamodbRequests)) delete dynamodbRequests[k];
  return taken;
}

const counted = (client: DynamoDBClient): DynamoDBClient => {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const op = String(context.commandName ?? 'unknown').replace(/Command$/, '');
      dynamodbRequests[op] = (dynamodbRequests[op] ?? 0) + 1;
      return next(args);
    },
    { step: 'initialize', name: 'countDynamoDbRequests' },
  );
  return client;
};

const once = <T>(make: () => T): (() => T) => {
  let value: T | undefined;
  return () => (value ??= make());
};

/** DynamoDB document client (`removeUndefinedValues`). */
export const documentClient = once(() =>
  DynamoDBDocumentClient.from(tracer.captureAWSv3Client(counted(new DynamoDBClient({}))), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: true },
  }),
);
/** DynamoDB client (Powertools idempotency's persistence layer). */
export const dynamodbClient = once(() => tracer.captureAWSv3Client(counted(new DynamoDBClient({}))));
/**
 * S3 client (bodies stored by reference). Path-style addressing: virtual-hosted
 * names do not resolve against a custom endpoint such as `AWS_ENDPOINT_URL`.
 */
export const s3Client = once(() => tracer.captureAWSv3Client(new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL) })));
/** Step Functions client (StartExecution, DescribeExecution, SendTaskSuccess). */
export const sfnClient = once(() => tracer.captureAWSv3Client(new SFNClient({})));
/** SQS client (the dead-letter queue). */
export const sqsClient = once(() => tracer.captureAWSv3Client(new SQSClient({})));
/** EventBridge client (the runtime's bus). */
export const eventBridgeClient = once(() => tracer.captureAWSv3Client(new EventBridgeClient({})));
