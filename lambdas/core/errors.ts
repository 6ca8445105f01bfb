/**
 * The runtime's errors. Names are string literals that survive minification and
 * match the `Error` names used in the state machines' Retry and Catch.
 *
 * Outcomes (a final answer, an invalid answer, a rejected approval, a step limit)
 * are never thrown: they are returned values that Choice states route. Thrown
 * errors are either transient ({@link TransientError}: Retry with backoff) or
 * terminal (the subclasses of {@link TerminalError}: not retried, caught,
 * recorded and sent to the dead-letter queue).
 */

/** Base of all runtime errors; keeps `cause`. */
export abstract class AgentRuntimeError extends Error {
  abstract override readonly name: string;
  /** Whether a Step Functions Retry may retry it. */
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A fault that may pass: throttling, a timeout, a 5xx. Retried with backoff and jitter. */
export class TransientError extends AgentRuntimeError {
  override readonly name = 'TransientError';
  readonly retryable = true;
}

/** A fault that retrying cannot fix. Not retried: the run fails and is recorded. */
export abstract class TerminalError extends AgentRuntimeError {
  readonly retryable = false;
}

/** The deployment is wrong: a missing environment variable, an unknown agent or tool. */
export class ConfigurationError extends TerminalError {
  override readonly name = 'ConfigurationError';
}

/** A stored record does not match any supported schema version. */
export class CorruptCheckpointError extends TerminalError {
  override readonly name = 'CorruptCheckpointError';
}

/**
 * The scripted model provider was called when its script did not expect it: no
 * turn left, a request that does not meet the turn's expectations, or turns left
 * over when the run ended.
 */
export class ScriptMismatchError extends TerminalError {
  override readonly name = 'ScriptMismatchError';
}

/**
 * A step's execution no longer owns its session (cancelled, rolled back, or taken
 * over by a continuation): what it would write is refused. Not retried.
 */
export class SessionFencedError extends TerminalError {
  override readonly name = 'SessionFencedError';
}

/** A tool returned a value its output schema rejects. */
export class ToolOutputInvalidError extends TerminalError {
  override readonly name = 'ToolOutputInvalidError';
}

/**
 * Thrown by a tool handler for an expected failure the model should see and can
 * act on ("no line with id 9999"). Recorded as an error result, not retried.
 */
export class ToolError extends Error {
  override readonly name = 'ToolError';
}

/**
 * What went wrong with a model provider's call, as the router acts on it:
 * - transient (retried with backoff, then the next fallback): `throttled` (429),
 *   `overloaded` (529, Bedrock `ServiceUnavailableException`), `server_error` (5xx),
 *   `timeout` (no answer within the route's `timeoutMs`), `connection` (reset, refused,
 *   dropped), `malformed_response` (a body that is not the provider's JSON, or is cut off);
 * - terminal (not retried; the next fallback is tried): `invalid_request` (400, 413, 422),
 *   `authentication` (401), `permission` (403), `not_found` (404: an unknown model).
 */
export type ProviderFaultKind =
  | 'throttled'
  | 'overloaded'
  | 'server_error'
  | 'timeout'
  | 'connection'
  | 'malformed_response'
  | 'invalid_request'
  | 'authentication'
  | 'permission'
  | 'not_found';

/** The fault kinds worth retrying (see {@link ProviderFaultKind}). */
export const TRANSIENT_PROVIDER_FAULTS: ReadonlySet<ProviderFaultKind> = new Set([
  'throttled',
  'overloaded',
  'server_error',
  'timeout',
  'connection',
  'malformed_response',
]);

/**
 * A model provider's call failed. Thrown by the adapters (`adapters/providers/`)
 * with the provider's own facts for the audit: HTTP status, request id, and the
 * delay its `Retry-After` (or `retry-after-ms`) header asked for. The message never
 * carries an API key or the request's content.
 */
export class ModelProviderError extends AgentRuntimeError {
  override readonly name = 'ModelProviderError';
  /** Whether the router retries it: its `kind` is in {@link TRANSIENT_PROVIDER_FAULTS}. */
  readonly retryable: boolean;
  /** The provider (`bedrock`, `anthropic`, `openai`, `scripted`). */
  readonly provider: string;
  /** The model id the call asked for. */
  readonly modelId: string;
  /** What went wrong (see {@link ProviderFaultKind}). */
  readonly kind: ProviderFaultKind;
  /** HTTP status, when the provider answered. */
  readonly status?: number;
  /** Milliseconds the provider asked to wait before retrying (`Retry-After`), when it did. */
  readonly retryAfterMs?: number;
  /** The provider's request id, when it sent one. */
  readonly requestId?: string;
  /**
   * @param message short, naming the provider, the model and the fault; never a key or the request's content.
   * @param fault the facts above; `cause` is the SDK's error, when it holds nothing secret.
   */
  constructor(
    message: string,
    fault: { provider: string; modelId: string; kind: ProviderFaultKind; status?: number; retryAfterMs?: number; requestId?: string; cause?: unknown },
  ) {
    super(message, { cause: fault.cause });
    this.provider = fault.provider;
    this.modelId = fault.modelId;
    this.kind = fault.kind;
    this.retryable = TRANSIENT_PROVIDER_FAULTS.has(fault.kind);
    if (fault.status !== undefined) this.status = fault.status;
    if (fault.retryAfterMs !== undefined) this.retryAfterMs = fault.retryAfterMs;
    if (fault.requestId !== undefined) this.requestId = fault.requestId;
  }
}

/**
 * Every model of a route failed with a terminal fault (or the route has no model
 * left to try): retrying the turn cannot help. The message lists each model's fault.
 */
export class ModelRouteFailedError extends TerminalError {
  override readonly name = 'ModelRouteFailedError';
}

/** Names of the errors a Retry must never retry. */
export const TERMINAL_ERROR_NAMES = [
  'ConfigurationError',
  'CorruptCheckpointError',
  'ScriptMismatchError',
  'ToolOutputInvalidError',
  'SessionFencedError',
  'ModelRouteFailedError',
] as const;
