/** Reading the environment: once, typed, failing with the variable's name. */
import type { EnvName } from '../core/env-names';
import { ConfigurationError } from '../core/errors';

/**
 * The value of a required environment variable.
 * @throws ConfigurationError naming the variable when it is unset or empty.
 */
export function requireEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new ConfigurationError(`environment variable ${name} is not set`);
  return value;
}

/**
 * A required environment variable holding a JSON object of strings.
 * @throws ConfigurationError naming the variable when it is unset or not such an object.
 */
export function requireJsonMapEnv(name: EnvName): Record<string, string> {
  const raw = requireEnv(name);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigurationError(`environment variable ${name} is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) {
    throw new ConfigurationError(`environment variable ${name} must be a JSON object of strings`);
  }
  return parsed as Record<string, string>;
}
