/** Turning zod failures into messages that name the field. */
import type { z } from 'zod';

/**
 * One line per issue: `path: message`. With a `prefix` (e.g. `input`), paths start
 * with it and the top level is the prefix itself; without, the top level is `(root)`.
 * Example: `formatIssues(err, 'detail')` → `["detail.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4: Invalid IPv4 address"]`
 */
export function formatIssues(error: z.ZodError, prefix?: string): string[] {
  return error.issues.map((issue) => {
    const parts = [...(prefix ? [prefix] : []), ...issue.path.map(String)];
    return `${parts.length > 0 ? parts.join('.') : '(root)'}: ${issue.message}`;
  });
}

/**
 * A rejected argument, as the model is told: which field, what was expected, what it got.
 * Example: `{"field":"lineIds.0","expected":"number","got":"\"1024\"","message":"Invalid input: expected number, received string"}`
 */
export interface ArgumentIssue {
  /** Dotted path of the field (`(root)` for the whole value). */
  readonly field: string;
  /** What the schema wants: a type, a bound, the allowed values or a format. */
  readonly expected: string;
  /** What the call gave, as JSON (at most 100 characters), or `missing`. */
  readonly got: string;
  /** zod's message for the issue. */
  readonly message: string;
}

/**
 * The issues of a failed parse run with `{ reportInput: true }`, as {@link ArgumentIssue}s.
 */
export function argumentIssues(error: z.ZodError): ArgumentIssue[] {
  return error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
    const raw = (issue as { input?: unknown }).input;
    // JSON.stringify is undefined only for functions and symbols, which parsed JSON never holds.
    const json = raw === undefined ? 'missing' : (JSON.stringify(raw) ?? typeof raw);
    const got = json.length > 100 ? `${json.slice(0, 97)}...` : json;
    return { field, expected: expectedOf(issue), got, message: issue.message };
  });
}

function expectedOf(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected;
    case 'too_small':
      return `${issue.origin} ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}`;
    case 'too_big':
      return `${issue.origin} ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}`;
    case 'invalid_value':
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_format':
      return `a ${issue.format}`;
    case 'unrecognized_keys':
      return `no keys ${issue.keys.join(', ')}`;
    default:
      return issue.message;
  }
}
