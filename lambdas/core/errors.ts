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

/** Names of the errors a Retry must never retry. */
export const TERMINAL_ERROR_NAMES = [
  'ConfigurationError',
  'CorruptCheckpointError',
  'ScriptMismatchError',
  'ToolOutputInvalidError',
  'SessionFencedError',
] as const;
