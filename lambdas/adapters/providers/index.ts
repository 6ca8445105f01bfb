/**
 * The adapter of each model reference, made once per Lambda instance and reused
 * across invocations (SDK clients keep their connections).
 *
 * API keys (Anthropic, OpenAI) come from the reference's Secrets Manager secret
 * (Powertools Parameters `getSecret`, cached for {@link API_KEY_MAX_AGE_SECONDS}),
 * else from its environment variable. A key is handed to the SDK client only:
 * never logged, checkpointed or published. Powertools Parameters (and the Secrets
 * Manager client it brings) is loaded at the first read of a secret, not with this
 * module: a function that reads no secret does not pay for it at cold start.
 */
import type { ModelProvider } from '../../core/contracts/model';
import { ModelProviderError } from '../../core/errors';
import { DEFAULT_API_KEY_ENV, type ApiKeySource, type ModelRef } from '../../core/routing';
import { ScriptedModelProvider } from './scripted';

/** Seconds a key read from Secrets Manager is reused before it is read again (a rotated key is picked up within this). */
export const API_KEY_MAX_AGE_SECONDS = 300;


const made = new Map<string, ModelProvider>();

/**
 * The adapter for `ref`, whose calls give up after `timeoutMs`. Cached per model
 * reference (all of it but `pricing`) and timeout; a scripted model is made anew
 * each time (its script replays by position; it keeps every request it receives).
 * Its calls throw `ModelProviderError` (kind `authentication`) when no API key can be found.
 */
export function providerFor(ref: ModelRef, timeoutMs: number): ModelProvider {
  if (ref.provider === 'scripted') return new ScriptedModelProvider(ref.script);
  // In a fixed order: two equal references written in another order share their adapter.
  const where = ref.provider === 'bedrock' ? [ref.region, ref.endpoint] : [ref.baseUrl, ref.apiKey?.secretName, ref.apiKey?.envVar];
  const cacheKey = JSON.stringify([ref.provider, ref.modelId, ...where, timeoutMs]);
  let provider = made.get(cacheKey);
  if (!provider) {
    provider = makeProvider(ref, timeoutMs);
    made.set(cacheKey, provider);
  }
  return provider;
}

function makeProvider(ref: Exclude<ModelRef, { provider: 'scripted' }>, timeoutMs: number): ModelProvider {
  switch (ref.provider) {
    case 'bedrock':
      return lazily('bedrock', async () => new (await import('./bedrock')).BedrockProvider({ timeoutMs, ...(ref.region ? { region: ref.region } : {}), ...(ref.endpoint ? { endpoint: ref.endpoint } : {}) }));
    case 'anthropic':
      return lazily('anthropic', async () => new (await import('./anthropic')).AnthropicProvider({ timeoutMs, apiKey: apiKeyReader('anthropic', ref.modelId, ref.apiKey), ...(ref.baseUrl ? { baseUrl: ref.baseUrl } : {}) }));
    case 'openai':
      return lazily('openai', async () => new (await import('./openai')).OpenAiProvider({ timeoutMs, apiKey: apiKeyReader('openai', ref.modelId, ref.apiKey), ...(ref.baseUrl ? { baseUrl: ref.baseUrl } : {}) }));
  }
}

/**
 * A provider whose adapter (and SDK) is loaded at its first call: the functions that
 * never call a model (Prepare, tools, StartRun share the bundle) never load an SDK.
 */
function lazily(name: string, load: () => Promise<ModelProvider>): ModelProvider {
  let loaded: Promise<ModelProvider> | undefined;
  const adapter = (): Promise<ModelProvider> =>
    (loaded ??= load().catch((error: unknown) => {
      loaded = undefined; // tried again at the next call
      throw error;
    }));
  return {
    name,
    ready: async () => (await adapter()).ready?.(),
    converse: async (request) => (await adapter()).converse(request),
  };
}

/**
 * Reads a provider's API key: the secret when one is named (cached), else the
 * environment variable, trimmed; it must be one token of printable ASCII.
 * @throws ModelProviderError of kind `authentication` (terminal: the route moves to its
 *   next model) naming the secret or variable when it gives no key; the secret's read
 *   faults propagate (the router counts them as transient).
 */
export function apiKeyReader(provider: 'anthropic' | 'openai', modelId: string, source: ApiKeySource | undefined, env: NodeJS.ProcessEnv = process.env): () => Promise<string> {
  const missing = (why: string): ModelProviderError => new ModelProviderError(`${provider} ${modelId}: no API key: ${why}`, { provider, modelId, kind: 'authentication' });
  // A key with a space, a line break or a control character inside would be quoted back by the
  // HTTP client's header check (into error messages and checkpoints): refused here, unquoted.
  const checked = (key: string, where: string): string => {
    if (!/^[\x21-\x7e]+$/.test(key)) throw missing(`${where} holds something that is not a single-line key (whitespace or a character outside printable ASCII)`);
    return key;
  };
  return async () => {
    if (source?.secretName) {
      const { getSecret } = await import('@aws-lambda-powertools/parameters/secrets');
      const value = await getSecret(source.secretName, { maxAge: API_KEY_MAX_AGE_SECONDS });
      if (typeof value !== 'string' || value.trim() === '') throw missing(`the secret ${source.secretName} holds no plain SecretString`);
      return checked(value.trim(), `the secret ${source.secretName}`);
    }
    const name = source?.envVar ?? DEFAULT_API_KEY_ENV[provider];
    const value = env[name];
    if (!value?.trim()) throw missing(`set the environment variable ${name} or name a Secrets Manager secret (apiKey.secretName)`);
    return checked(value.trim(), `the environment variable ${name}`);
  };
}
