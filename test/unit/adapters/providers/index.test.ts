/**
 * The adapter of each model reference (`providerFor`: cached per reference and
 * timeout, loaded at its first call) and the API key reader (`apiKeyReader`: a
 * Secrets Manager secret or an environment variable, refused unless one token of
 * printable ASCII, never quoted back).
 *
 * `getSecret` is mocked; the three adapter modules are the real ones, wrapped so
 * that the test sees when a module is imported and each adapter made (and can make
 * a load fail). No call reaches a network: the first calls here only read the key
 * and build the SDK client (`ready`), or fail on the key before any request.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type * as AnthropicModule from '../../../../lambdas/adapters/providers/anthropic';
import type * as BedrockModule from '../../../../lambdas/adapters/providers/bedrock';
import { API_KEY_MAX_AGE_SECONDS, apiKeyReader, providerFor } from '../../../../lambdas/adapters/providers/index';
import type * as OpenAiModule from '../../../../lambdas/adapters/providers/openai';
import { ScriptedModelProvider } from '../../../../lambdas/adapters/providers/scripted';
import type { ModelRequest } from '../../../../lambdas/core/contracts/model';
import type { ScriptedConversation } from '../../../../lambdas/core/contracts/scripted';
import { ModelProviderError } from '../../../../lambdas/core/errors';
import type { ModelRef } from '../../../../lambdas/core/routing';
import { rejection } from '../../support/rejection';

const hooks = vi.hoisted(() => {
  /** The adapter modules imported so far (a mocked module's factory runs at its first import). */
  const imported: string[] = [];
  /** Each adapter made, with the options `providerFor` gave it. */
  const made: Array<{ adapter: string; options: object }> = [];
  /** How many of an adapter's next constructions fail. */
  const failing = new Map<string, number>();
  /** A constructor that records the adapter made (or fails as `failing` says), then makes the real one. */
  const recorded = <O extends object, P extends object>(adapter: string, Real: new (options: O) => P) =>
    function RecordedAdapter(options: O): P {
      made.push({ adapter, options });
      const failures = failing.get(adapter) ?? 0;
      if (failures > 0) {
        failing.set(adapter, failures - 1);
        throw new Error(`${adapter}: the adapter could not be loaded`);
      }
      return new Real(options);
    };
  const getSecret = vi.fn<(name: string, options?: { maxAge?: number }) => Promise<unknown>>();
  return { imported, made, failing, recorded, getSecret };
});

vi.mock('@aws-lambda-powertools/parameters/secrets', () => ({ getSecret: hooks.getSecret }));
vi.mock('../../../../lambdas/adapters/providers/bedrock', async (importOriginal) => {
  const actual = await importOriginal<typeof BedrockModule>();
  hooks.imported.push('bedrock');
  return { ...actual, BedrockProvider: hooks.recorded('bedrock', actual.BedrockProvider) };
});
vi.mock('../../../../lambdas/adapters/providers/anthropic', async (importOriginal) => {
  const actual = await importOriginal<typeof AnthropicModule>();
  hooks.imported.push('anthropic');
  return { ...actual, AnthropicProvider: hooks.recorded('anthropic', actual.AnthropicProvider) };
});
vi.mock('../../../../lambdas/adapters/providers/openai', async (importOriginal) => {
  const actual = await importOriginal<typeof OpenAiModule>();
  hooks.imported.push('openai');
  return { ...actual, OpenAiProvider: hooks.recorded('openai', actual.OpenAiProvider) };
});

const SCRIPT: ScriptedConversation = {
  schemaVersion: 1,
  modelId: 'scripted/index-v1',
  turns: [{ response: { content: [{ type: 'text', text: '{}' }], stopReason: 'end_turn', usage: { inputTokens: 1, outputTokens: 1 } } }],
};
const PRICING = { inputUsdPerMillionTokens: 3, outputUsdPerMillionTokens: 15, source: 'https://example.com/pricing', asOf: '2026-03-01' };
const OTHER_PRICING = { ...PRICING, inputUsdPerMillionTokens: 1 };

/** The adapters made since `from` (an index into `hooks.made`). */
const madeSince = (from: number) => hooks.made.slice(from);

/** The error a key reader fails with, checked to be an authentication fault of `provider` and `modelId`. */
async function authenticationFault(read: () => Promise<string>, provider: string, modelId: string): Promise<ModelProviderError> {
  const error = await rejection(read());
  expect(error).toBeInstanceOf(ModelProviderError);
  const fault = error as ModelProviderError;
  expect({ kind: fault.kind, retryable: fault.retryable, provider: fault.provider, modelId: fault.modelId }).toEqual({
    kind: 'authentication',
    retryable: false,
    provider,
    modelId,
  });
  return fault;
}

beforeEach(() => {
  hooks.getSecret.mockReset();
  hooks.failing.clear();
});
afterEach(() => {
  vi.unstubAllEnvs();
});

describe('providerFor', () => {
  // First in the file: no adapter module has been imported by any test before it.
  it('imports no adapter module and makes no adapter: each loads at its first call', () => {
    const bedrock = providerFor({ provider: 'bedrock', modelId: 'nova-lazy', region: 'eu-west-1' }, 1_000);
    const anthropic = providerFor({ provider: 'anthropic', modelId: 'claude-lazy' }, 1_000);
    const openai = providerFor({ provider: 'openai', modelId: 'gpt-lazy' }, 1_000);
    expect([bedrock.name, anthropic.name, openai.name]).toEqual(['bedrock', 'anthropic', 'openai']);
    expect(hooks.imported).toEqual([]);
    expect(hooks.made).toEqual([]);
    expect(hooks.getSecret).not.toHaveBeenCalled();
  });

  it('names a non-scripted adapter by its provider before any call, with no API key set', () => {
    vi.stubEnv('ANTHROPIC_API_KEY', undefined);
    vi.stubEnv('OPENAI_API_KEY', undefined);
    const from = hooks.made.length;
    expect(providerFor({ provider: 'bedrock', modelId: 'nova-name' }, 2_000).name).toBe('bedrock');
    expect(providerFor({ provider: 'anthropic', modelId: 'claude-name' }, 2_000).name).toBe('anthropic');
    expect(providerFor({ provider: 'openai', modelId: 'gpt-name', apiKey: { secretName: 'team/openai-name' } }, 2_000).name).toBe('openai');
    expect(madeSince(from)).toEqual([]);
    expect(hooks.getSecret).not.toHaveBeenCalled();
  });

  it('gives the same reference (or an equal one) and timeout the same adapter', () => {
    const ref: ModelRef = { provider: 'anthropic', modelId: 'claude-same', baseUrl: 'http://127.0.0.1:9', apiKey: { envVar: 'UNIT_CLAUDE_SAME_KEY' } };
    const adapter = providerFor(ref, 3_000);
    expect(providerFor(ref, 3_000)).toBe(adapter);
    expect(providerFor({ provider: 'anthropic', modelId: 'claude-same', baseUrl: 'http://127.0.0.1:9', apiKey: { envVar: 'UNIT_CLAUDE_SAME_KEY' } }, 3_000)).toBe(adapter);
    const nova: ModelRef = { provider: 'bedrock', modelId: 'nova-same', region: 'us-east-1', endpoint: 'http://127.0.0.1:9' };
    expect(providerFor({ ...nova }, 3_000)).toBe(providerFor(nova, 3_000));
  });

  it('gives a different timeout a different adapter', () => {
    const ref: ModelRef = { provider: 'openai', modelId: 'gpt-timeout' };
    expect(providerFor(ref, 4_000)).not.toBe(providerFor(ref, 4_001));
    expect(providerFor(ref, 4_000)).toBe(providerFor(ref, 4_000));
  });

  it('gives a Bedrock reference with another region or endpoint a different adapter', () => {
    const ref: ModelRef = { provider: 'bedrock', modelId: 'nova-where', region: 'us-east-1' };
    const adapter = providerFor(ref, 5_000);
    expect(providerFor({ ...ref, region: 'eu-central-1' }, 5_000)).not.toBe(adapter);
    expect(providerFor({ provider: 'bedrock', modelId: 'nova-where' }, 5_000)).not.toBe(adapter);
    expect(providerFor({ ...ref, endpoint: 'http://127.0.0.1:9' }, 5_000)).not.toBe(adapter);
    expect(providerFor({ ...ref, endpoint: 'http://127.0.0.1:9' }, 5_000)).not.toBe(providerFor({ ...ref, endpoint: 'http://127.0.0.1:10' }, 5_000));
  });

  it('gives an Anthropic or OpenAI reference with another baseUrl a different adapter', () => {
    const claude: ModelRef = { provider: 'anthropic', modelId: 'claude-base' };
    expect(providerFor({ ...claude, baseUrl: 'http://127.0.0.1:9' }, 6_000)).not.toBe(providerFor(claude, 6_000));
    expect(providerFor({ ...claude, baseUrl: 'http://127.0.0.1:9' }, 6_000)).not.toBe(providerFor({ ...claude, baseUrl: 'http://127.0.0.1:10' }, 6_000));
    const gpt: ModelRef = { provider: 'openai', modelId: 'gpt-base' };
    expect(providerFor({ ...gpt, baseUrl: 'http://127.0.0.1:9/v1' }, 6_000)).not.toBe(providerFor(gpt, 6_000));
  });

  it('gives another API key source (secret or variable) a different adapter', () => {
    const claude: ModelRef = { provider: 'anthropic', modelId: 'claude-key' };
    const bySecret = providerFor({ ...claude, apiKey: { secretName: 'team/anthropic-a' } }, 7_000);
    expect(providerFor({ ...claude, apiKey: { secretName: 'team/anthropic-b' } }, 7_000)).not.toBe(bySecret);
    expect(providerFor(claude, 7_000)).not.toBe(bySecret);
    expect(providerFor({ ...claude, apiKey: { envVar: 'UNIT_CLAUDE_KEY' } }, 7_000)).not.toBe(providerFor(claude, 7_000));
    const gpt: ModelRef = { provider: 'openai', modelId: 'gpt-key' };
    expect(providerFor({ ...gpt, apiKey: { secretName: 'team/openai-a' } }, 7_000)).not.toBe(providerFor({ ...gpt, apiKey: { secretName: 'team/openai-b' } }, 7_000));
  });

  it('gives a reference that differs only in pricing the same adapter', () => {
    const claude: ModelRef = { provider: 'anthropic', modelId: 'claude-priced' };
    const adapter = providerFor(claude, 8_000);
    expect(providerFor({ ...claude, pricing: PRICING }, 8_000)).toBe(adapter);
    expect(providerFor({ ...claude, pricing: OTHER_PRICING }, 8_000)).toBe(adapter);
    const nova: ModelRef = { provider: 'bedrock', modelId: 'nova-priced', pricing: PRICING };
    expect(providerFor({ ...nova, pricing: OTHER_PRICING }, 8_000)).toBe(providerFor(nova, 8_000));
  });

  it('gives models of different providers with the same id different adapters', () => {
    const names = (['bedrock', 'anthropic', 'openai'] as const).map((provider) => providerFor({ provider, modelId: 'shared-id' }, 9_000));
    expect(new Set(names).size).toBe(3);
    expect(names.map((adapter) => adapter.name)).toEqual(['bedrock', 'anthropic', 'openai']);
  });

  it('makes a scripted model anew at each call, named scripted', () => {
    const ref: ModelRef = { provider: 'scripted', script: SCRIPT };
    const first = providerFor(ref, 10_000);
    const second = providerFor(ref, 10_000);
    expect(first).not.toBe(second);
    expect(first).toBeInstanceOf(ScriptedModelProvider);
    expect(second).toBeInstanceOf(ScriptedModelProvider);
    expect([first.name, second.name]).toEqual(['scripted', 'scripted']);
  });

  it('makes the adapter at its first call, once, with the reference’s settings', async () => {
    vi.stubEnv('OPENAI_API_KEY', 'sk-unit-openai-0123456789');
    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-ant-unit-0123456789');
    const from = hooks.made.length;
    const nova = providerFor({ provider: 'bedrock', modelId: 'nova-load', region: 'eu-west-1', endpoint: 'http://127.0.0.1:9', pricing: PRICING }, 11_000);
    const claude = providerFor({ provider: 'anthropic', modelId: 'claude-load', baseUrl: 'http://127.0.0.1:9' }, 11_001);
    const gpt = providerFor({ provider: 'openai', modelId: 'gpt-load' }, 11_002);
    expect(madeSince(from)).toEqual([]);

    await nova.ready?.();
    await claude.ready?.();
    await gpt.ready?.();
    await Promise.all([nova.ready?.(), claude.ready?.(), gpt.ready?.()]);
    expect(madeSince(from)).toEqual([
      { adapter: 'bedrock', options: { timeoutMs: 11_000, region: 'eu-west-1', endpoint: 'http://127.0.0.1:9' } },
      { adapter: 'anthropic', options: { timeoutMs: 11_001, apiKey: expect.any(Function) as unknown, baseUrl: 'http://127.0.0.1:9' } },
      { adapter: 'openai', options: { timeoutMs: 11_002, apiKey: expect.any(Function) as unknown } },
    ]);
    expect(hooks.imported).toEqual(expect.arrayContaining(['bedrock', 'anthropic', 'openai']));
  });

  it('hands the adapter a key reader of the reference’s secret', async () => {
    hooks.getSecret.mockResolvedValue('sk-ant-from-secret-0123');
    const from = hooks.made.length;
    const claude = providerFor({ provider: 'anthropic', modelId: 'claude-secret', apiKey: { secretName: 'team/anthropic-load' } }, 12_000);
    await claude.ready?.();
    const [made] = madeSince(from);
    expect(hooks.getSecret).toHaveBeenCalledWith('team/anthropic-load', { maxAge: API_KEY_MAX_AGE_SECONDS });
    const { apiKey } = made?.options as { apiKey: () => Promise<string> };
    await expect(apiKey()).resolves.toBe('sk-ant-from-secret-0123');
  });

  it('fails the first call of a model without a key as an authentication fault, naming the variable', async () => {
    vi.stubEnv('UNIT_NO_SUCH_KEY', undefined);
    const request: ModelRequest = { modelId: 'claude-nokey', system: 'You answer.', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello.' }] }], tools: [] };
    const claude = providerFor({ provider: 'anthropic', modelId: 'claude-nokey', apiKey: { envVar: 'UNIT_NO_SUCH_KEY' } }, 13_000);
    const error = await rejection(claude.converse(request));
    expect(error).toBeInstanceOf(ModelProviderError);
    expect({ kind: (error as ModelProviderError).kind, retryable: (error as ModelProviderError).retryable }).toEqual({ kind: 'authentication', retryable: false });
    expect(error.message).toContain('UNIT_NO_SUCH_KEY');
    const gpt = providerFor({ provider: 'openai', modelId: 'gpt-nokey', apiKey: { envVar: 'UNIT_NO_SUCH_KEY' } }, 13_000);
    const fault = await rejection(gpt.converse({ ...request, modelId: 'gpt-nokey' }));
    expect(fault).toBeInstanceOf(ModelProviderError);
    expect((fault as ModelProviderError).kind).toBe('authentication');
    expect(fault.message).toContain('UNIT_NO_SUCH_KEY');
  });

  it('loads the adapter again at the next call after a failed load', async () => {
    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-ant-unit-0123456789');
    hooks.failing.set('anthropic', 1);
    const from = hooks.made.length;
    const claude = providerFor({ provider: 'anthropic', modelId: 'claude-reload' }, 14_000);
    // Calls made while the load is under way share its failure: one load, two rejections.
    const [first, concurrent] = await Promise.all([rejection(claude.ready?.() ?? Promise.resolve()), rejection(claude.ready?.() ?? Promise.resolve())]);
    expect(first.message).toBe('anthropic: the adapter could not be loaded');
    expect(concurrent).toBe(first);
    expect(madeSince(from)).toHaveLength(1);

    await claude.ready?.();
    await claude.ready?.();
    expect(madeSince(from)).toHaveLength(2);
    expect(providerFor({ provider: 'anthropic', modelId: 'claude-reload' }, 14_000)).toBe(claude);
  });
});

describe('apiKeyReader', () => {
  it('reads ANTHROPIC_API_KEY (or OPENAI_API_KEY) from the environment it is given, trimmed', async () => {
    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-from-process-env');
    await expect(apiKeyReader('anthropic', 'claude-x', undefined, { ANTHROPIC_API_KEY: '  sk-ant-unit-key\n' })()).resolves.toBe('sk-ant-unit-key');
    await expect(apiKeyReader('openai', 'gpt-x', undefined, { OPENAI_API_KEY: 'sk-openai-unit-key\r\n', ANTHROPIC_API_KEY: 'sk-other' })()).resolves.toBe('sk-openai-unit-key');
  });

  it('reads the environment variable the source names instead', async () => {
    const env = { TEAM_ANTHROPIC_KEY: ' sk-team-key ', ANTHROPIC_API_KEY: 'sk-default-key' };
    await expect(apiKeyReader('anthropic', 'claude-x', { envVar: 'TEAM_ANTHROPIC_KEY' }, env)()).resolves.toBe('sk-team-key');
    const fault = await authenticationFault(apiKeyReader('anthropic', 'claude-x', { envVar: 'TEAM_OTHER_KEY' }, env), 'anthropic', 'claude-x');
    expect(fault.message).toContain('TEAM_OTHER_KEY');
    expect(fault.message).not.toContain('ANTHROPIC_API_KEY');
  });

  it('reads the environment at each call, not when it is made', async () => {
    const env: NodeJS.ProcessEnv = {};
    const read = apiKeyReader('openai', 'gpt-x', undefined, env);
    await authenticationFault(read, 'openai', 'gpt-x');
    env.OPENAI_API_KEY = 'sk-set-later';
    await expect(read()).resolves.toBe('sk-set-later');
  });

  it('fails without a key as a terminal authentication fault naming the variable', async () => {
    for (const env of [{}, { ANTHROPIC_API_KEY: '' }, { OPENAI_API_KEY: 'sk-openai-not-mine' }]) {
      const fault = await authenticationFault(apiKeyReader('anthropic', 'claude-x', undefined, env), 'anthropic', 'claude-x');
      expect(fault.name).toBe('ModelProviderError');
      expect(fault.message).toMatch(/^anthropic claude-x: no API key: /);
      expect(fault.message).toContain('ANTHROPIC_API_KEY');
      expect(fault.message).not.toContain('sk-openai-not-mine');
    }
    const fault = await authenticationFault(apiKeyReader('openai', 'gpt-x', undefined, {}), 'openai', 'gpt-x');
    expect(fault.message).toContain('OPENAI_API_KEY');
  });

  it('fails for a key of whitespace only, naming the variable', async () => {
    const fault = await authenticationFault(apiKeyReader('anthropic', 'claude-x', undefined, { ANTHROPIC_API_KEY: ' \n\t ' }), 'anthropic', 'claude-x');
    expect(fault.message).toContain('ANTHROPIC_API_KEY');
  });

  it('refuses a key with whitespace, a line break, a control or a non-ASCII character inside, without quoting it', async () => {
    const keys = ['sk-abc\nxyz', 'sk abc', 'sk-abc xyz', 'sk-abc\r\nxyz', 'sk-abc\txyz', 'sk-abc\u0000xyz', 'sk-abc\u007fxyz', 'sk-abcé', 'sk-abc\u00a0xyz', 'sk-abc\u2028xyz', 'sk-abc🔑xyz'];
    for (const key of keys) {
      const fault = await authenticationFault(apiKeyReader('anthropic', 'claude-x', undefined, { ANTHROPIC_API_KEY: key }), 'anthropic', 'claude-x');
      expect(fault.message, JSON.stringify(key)).toContain('the environment variable ANTHROPIC_API_KEY');
      expect(fault.message, JSON.stringify(key)).not.toContain(key);
      expect(fault.message, JSON.stringify(key)).not.toContain('abc');
      expect(fault.message, JSON.stringify(key)).not.toContain('xyz');
      expect(fault.cause, JSON.stringify(key)).toBeUndefined();
    }
  });

  it('accepts any printable ASCII token', async () => {
    const key = 'sk-ant-api03_AZaz09!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
    await expect(apiKeyReader('anthropic', 'claude-x', undefined, { ANTHROPIC_API_KEY: key })()).resolves.toBe(key);
  });

  describe('with a secret', () => {
    it('reads the key from the secret (cached for API_KEY_MAX_AGE_SECONDS), trimmed, before any variable', async () => {
      hooks.getSecret.mockResolvedValueOnce('  sk-ant-secret-key\n');
      const env = { ANTHROPIC_API_KEY: 'sk-default-key', TEAM_KEY: 'sk-team-key' };
      await expect(apiKeyReader('anthropic', 'claude-x', { secretName: 'team/anthropic', envVar: 'TEAM_KEY' }, env)()).resolves.toBe('sk-ant-secret-key');
      expect(API_KEY_MAX_AGE_SECONDS).toBe(300);
      expect(hooks.getSecret).toHaveBeenCalledTimes(1);
      expect(hooks.getSecret).toHaveBeenCalledWith('team/anthropic', { maxAge: 300 });
    });

    it('asks for the secret at every call (its cache, not the reader, keeps it), so a rotated key is picked up', async () => {
      hooks.getSecret.mockResolvedValueOnce('sk-key-one').mockResolvedValueOnce('sk-key-two');
      const read = apiKeyReader('openai', 'gpt-x', { secretName: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/openai-AbCdEf' }, {});
      await expect(read()).resolves.toBe('sk-key-one');
      await expect(read()).resolves.toBe('sk-key-two');
      expect(hooks.getSecret).toHaveBeenCalledTimes(2);
      expect(hooks.getSecret).toHaveBeenLastCalledWith('arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/openai-AbCdEf', { maxAge: 300 });
    });

    it('fails for an empty secret as an authentication fault naming the secret', async () => {
      for (const value of ['', '  \n']) {
        hooks.getSecret.mockResolvedValueOnce(value);
        const fault = await authenticationFault(apiKeyReader('anthropic', 'claude-x', { secretName: 'team/anthropic' }, { ANTHROPIC_API_KEY: 'sk-default-key' }), 'anthropic', 'claude-x');
        expect(fault.message).toBe('anthropic claude-x: no API key: the secret team/anthropic holds no plain SecretString');
      }
    });

    it('fails for a secret that is not a string (JSON parsed, binary, absent) as an authentication fault, not quoting it', async () => {
      for (const value of [{ apiKey: 'sk-abc-in-json' }, new TextEncoder().encode('sk-abc-binary'), undefined]) {
        hooks.getSecret.mockResolvedValueOnce(value);
        const fault = await authenticationFault(apiKeyReader('openai', 'gpt-x', { secretName: 'team/openai' }, {}), 'openai', 'gpt-x');
        expect(fault.message).toContain('the secret team/openai holds no plain SecretString');
        expect(fault.message).not.toContain('abc');
      }
      expect(hooks.getSecret).toHaveBeenCalledWith('team/openai', { maxAge: 300 });
    });

    it('refuses a secret holding more than one token, without quoting it', async () => {
      for (const value of ['sk-abc\nxyz', 'sk abc', 'sk-abcé']) {
        hooks.getSecret.mockResolvedValueOnce(value);
        const fault = await authenticationFault(apiKeyReader('anthropic', 'claude-x', { secretName: 'team/anthropic' }, {}), 'anthropic', 'claude-x');
        expect(fault.message, JSON.stringify(value)).toContain('the secret team/anthropic');
        expect(fault.message, JSON.stringify(value)).not.toContain('abc');
        expect(fault.message, JSON.stringify(value)).not.toContain('xyz');
      }
    });

    it('lets a fault reading the secret through unchanged', async () => {
      const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      hooks.getSecret.mockRejectedValueOnce(throttled);
      await expect(apiKeyReader('anthropic', 'claude-x', { secretName: 'team/anthropic' }, {})()).rejects.toBe(throttled);
    });
  });
});
