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
