/** Turning zod failures into messages that name the field. */
import type { z } from 'zod';

/**
 * One line per issue: `path: message`, `(root)` for the top level.
 * Example: `["detail.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4: Invalid IPv4 address"]`
 */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
    return `${path}: ${issue.message}`;
  });
}
