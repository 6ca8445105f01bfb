/** Builders of checkpoint records and content blocks for the unit tests (records as written today: schema version 2). */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ApprovalStore } from '../../../lambdas/adapters/approval-store';
import { BUDGET_PAUSE_TOOL_PREFIX } from '../../../lambdas/core/approvals';
import { CHECKPOINT_SCHEMA_VERSION } from '../../../lambdas/core/constants';
import {
  checkpointKey,
  SESSION_SK,
  type BodyRef,
  type InputCheckpoint,
  type ModelCheckpoint,
  type SessionRecord,
  type ToolCheckpoint,
  type TriggerInfo,
} from '../../../lambdas/core/contracts/checkpoint';
import type { ToolCallRef } from '../../../lambdas/core/contracts/loop';
import type { ModelResponse, StopReason, TextBlock, ToolResultBlock, ToolUseBlock } from '../../../lambdas/core/contracts/model';

export const SESSION_ID = 'ses_0123456789abcdef0123456789abcdef';
export const CREATED_AT = '2024-12-10T11:10:07.000Z';
export const API_TRIGGER_INFO: TriggerInfo = { source: 'api', dedupeKey: 'alert-42' };

/** A copy of `value` without `keys`. */
export function omit<T extends object, K extends keyof T>(value: T, ...keys: K[]): Omit<T, K> {
  const copy: Partial<T> = { ...value };
  for (const key of keys) delete copy[key];
  return copy as Omit<T, K>;
}

export const text = (value: string): TextBlock => ({ type: 'text', text: value });

export const toolUse = (id: string, name: string, input: Record<string, unknown> = {}): ToolUseBlock => ({ type: 'tool_use', id, name, input });

export function response(content: ModelResponse['content'], stopReason?: StopReason): ModelResponse {
  return {
    content,
    stopReason: stopReason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn'),
    usage: { inputTokens: 100, outputTokens: 10 },
    modelId: 'scripted/unit-v1',
    requestId: 'req-1',
  };
}

export function inputRecord(prompt: string, sessionId: string = SESSION_ID): InputCheckpoint {
  return {
    sessionId,
    sk: checkpointKey.input(),
    schemaVersion: CHECKPOINT_SCHEMA_VERSION,
    createdAt: CREATED_AT,
    kind: 'input',
    step: 0,
    input: { question: prompt },
    prompt,
    trigger: API_TRIGGER_INFO,
  };
}

export interface ModelRecordOptions {
  outcome?: ModelCheckpoint['outcome'];
  calls?: ToolCallRef[];
  inlineResults?: ToolResultBlock[];
  validationErrors?: string[];
  output?: unknown;
  stopReason?: StopReason;
}

export function modelRecord(step: number, content: ModelResponse['content'], options: ModelRecordOptions = {}): ModelCheckpoint {
  const hasCalls = content.some((b) => b.type === 'tool_use');
  return {
    sessionId: SESSION_ID,
    sk: checkpointKey.model(step),
    schemaVersion: CHECKPOINT_SCHEMA_VERSION,
    createdAt: CREATED_AT,
    kind: 'model',
    step,
    provider: 'scripted',
    request: { modelId: 'scripted/unit-v1', tools: ['echo'], messageCount: 2 * step - 1 },
    response: response(content, options.stopReason),
    outcome: options.outcome ?? (hasCalls ? 'tool_calls' : 'final'),
    calls: options.calls ?? [],
    inlineResults: options.inlineResults ?? [],
    validationErrors: options.validationErrors,
    output: options.output,
    durationMs: 5,
  };
}

export function toolRecord(step: number, callId: string, result: string, isError = false): ToolCheckpoint {
  return {
    sessionId: SESSION_ID,
    sk: checkpointKey.tool(step, callId),
    schemaVersion: CHECKPOINT_SCHEMA_VERSION,
    createdAt: CREATED_AT,
    kind: 'tool',
    step,
    callId,
    tool: 'echo',
    toolVersion: '1.0.0',
    input: {},
    approval: { decision: 'not_required' },
    status: isError ? 'tool_error' : 'succeeded',
    result,
    isError,
    durationMs: 2,
  };
}

/** A tool checkpoint whose result is stored by reference (in S3), not inline. */
export function toolRecordByRef(step: number, callId: string, ref: BodyRef): ToolCheckpoint {
  return { ...omit(toolRecord(step, callId, ''), 'result'), resultRef: ref };
}

export const EXECUTION_ARN = 'arn:aws:states:us-east-1:123456789012:execution:unit-agent:run-1';

/** A version 2 session head (RUNNING, first execution, branch 0 unless overridden). */
export function sessionRecord(overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    sessionId: SESSION_ID,
    sk: SESSION_SK,
    schemaVersion: CHECKPOINT_SCHEMA_VERSION,
    kind: 'session',
    agent: 'unit-agent',
    status: 'RUNNING',
    executionArn: EXECUTION_ARN,
    executions: 1,
    branch: 0,
    trigger: API_TRIGGER_INFO,
    createdAt: CREATED_AT,
    updatedAt: CREATED_AT,
    step: 0,
    ...overrides,
  };
}

/** A version 1 session head as DynamoDB stores it (a plain item, as the walking skeleton wrote it), for stream images and seeds. */
export const sessionHeadItem = (status: 'RUNNING' | 'SUCCEEDED' | 'FAILED', step = 0): Record<string, unknown> => ({
  sessionId: SESSION_ID,
  sk: 'SESSION',
  schemaVersion: 1,
  kind: 'session',
  agent: 'unit-agent',
  status,
  executionArn: EXECUTION_ARN,
  createdAt: CREATED_AT,
  updatedAt: CREATED_AT,
  step,
});

export const APPROVAL_TABLE = 'unit-approvals';
/** Builds items only (`pendingPut`): its client never sends. */
const approvalItems = new ApprovalStore(DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })), APPROVAL_TABLE);

/**
 * The wait of a budget pause as the approval request task hands it to `CheckpointStore.pause`
 * (`ApprovalStore.pendingPut`): the pending approval record with its task token, a week to answer.
 */
export function budgetWait(
  pause: NonNullable<SessionRecord['pause']>,
  sessionId: string = SESSION_ID,
  agent = 'unit-agent',
): { TableName: string; Item: Record<string, unknown> } {
  const { budget, used, limit } = pause;
  return approvalItems.pendingPut({
    approvalId: pause.approvalId,
    sessionId,
    agent,
    step: pause.step,
    callId: `budget@${pause.at}`,
    tool: `${BUDGET_PAUSE_TOOL_PREFIX}${budget}`,
    input: { budget, used, limit },
    taskToken: `token-of-${pause.approvalId}`,
    requestedAt: pause.at,
    expiresAt: new Date(Date.parse(pause.at) + 7 * 24 * 3600 * 1000).toISOString(),
  });
}
