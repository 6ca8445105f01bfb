import { describe, expect, it } from 'vitest';
import { ScriptedModelProvider } from '../../../lambdas/adapters/providers/scripted';
import type { Message, ModelRequest, ToolSpec } from '../../../lambdas/core/contracts/model';
import type { ScriptedConversation } from '../../../lambdas/core/contracts/scripted';
import { ScriptMismatchError } from '../../../lambdas/core/errors';
import { rejection } from '../support/rejection';

const usage = { inputTokens: 10, outputTokens: 2 };
const SCRIPT: ScriptedConversation = {
  schemaVersion: 1,
  modelId: 'scripted/unit-v1',
  turns: [
    {
      expect: { tools: ['echo', 'lookup'], lastMessageIncludes: ['alert 42'] },
      response: { content: [{ type: 'tool_use', id: 'call_1', name: 'echo', input: { text: 'hi' } }], stopReason: 'tool_use', usage },
    },
    {
      expect: { toolResultIncludes: ['"text":"hi"'] },
      response: { content: [{ type: 'text', text: '{"answer":"done"}' }], stopReason: 'end_turn', usage },
    },
  ],
};

const TOOLS: ToolSpec[] = ['echo', 'lookup'].map((name) => ({ name, description: name, inputSchema: { type: 'object' } }));
const FIRST: Message = { role: 'user', content: [{ type: 'text', text: 'Look at alert 42.' }] };
const ASSISTANT_1: Message = { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'echo', input: { text: 'hi' } }] };
const RESULTS: Message = { role: 'user', content: [{ type: 'tool_result', toolUseId: 'call_1', content: '{"text":"hi"}', isError: false }] };

/** A fresh request (deep copies of the messages, so a test may change it). */
const request = (messages: Message[], tools: ToolSpec[] = TOOLS): ModelRequest => structuredClone({ modelId: 'scripted/unit-v1', system: 'Be brief.', messages, tools });
const turn1 = (): ModelRequest => request([FIRST]);
const turn2 = (): ModelRequest => request([FIRST, ASSISTANT_1, RESULTS]);


describe('ScriptedModelProvider', () => {
  it('replays the turn at the number of assistant messages in the request', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    await expect(provider.converse(turn1())).resolves.toEqual({ ...SCRIPT.turns[0]?.response, modelId: 'scripted/unit-v1', requestId: 'scripted-1' });
    await expect(provider.converse(turn2())).resolves.toEqual({ ...SCRIPT.turns[1]?.response, modelId: 'scripted/unit-v1', requestId: 'scripted-2' });
  });

  it('is stateless: a fresh instance, or the same request again, gives the same answer', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const first = await provider.converse(turn2());
    expect(await provider.converse(turn2())).toEqual(first);
    expect(await new ScriptedModelProvider(SCRIPT).converse(turn2())).toEqual(first);
  });

  it('answers with a copy: changing it leaves the script intact', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const answer = await provider.converse(turn1());
    answer.content.length = 0;
    expect((await provider.converse(turn1())).content).toHaveLength(1);
    expect(SCRIPT.turns[0]?.response.content).toHaveLength(1);
  });

  it('records every request, as deep copies', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const sent = turn1();
    await provider.converse(sent);
    await provider.converse(turn2());
    (sent.messages[0]?.content[0] as { text: string }).text = 'changed afterwards';
    sent.messages.push(RESULTS);

    expect(provider.requests).toHaveLength(2);
    expect(provider.requests[0]).toEqual(turn1());
    expect(provider.requests[1]).toEqual(turn2());
  });

  it('records the request also when it is refused', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    await rejection(provider.converse(request([FIRST], [])));
    expect(provider.requests).toEqual([request([FIRST], [])]);
  });

  it('fails when called past the end of the script ("unexpected call")', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const answer: Message = { role: 'assistant', content: [{ type: 'text', text: '{"answer":"done"}' }] };
    const err = await rejection(provider.converse(request([FIRST, ASSISTANT_1, RESULTS, answer, FIRST])));
    expect(err).toBeInstanceOf(ScriptMismatchError);
    expect(err.message).toMatch(/scripted\/unit-v1: unexpected call 3; the script has 2 turn\(s\)/);
  });

  it('fails when the tool results miss an expected string, naming it', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const other: Message = { role: 'user', content: [{ type: 'tool_result', toolUseId: 'call_1', content: '{"text":"bye"}', isError: false }] };
    const err = await rejection(provider.converse(request([FIRST, ASSISTANT_1, other])));
    expect(err).toBeInstanceOf(ScriptMismatchError);
    expect(err.message).toContain('turn 2 expectations not met');
    expect(err.message).toContain('tool results do not include "\\"text\\":\\"hi\\""');
  });

  it('fails when the text of the last message is only in an earlier message', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const textResults: Message = { role: 'user', content: [{ type: 'text', text: '"text":"hi"' }] };
    const err = await rejection(provider.converse(request([FIRST, ASSISTANT_1, textResults])));
    expect(err).toBeInstanceOf(ScriptMismatchError);
    expect(err.message).toContain('tool results do not include');
  });

  it('fails when the last message misses an expected string, naming it', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const err = await rejection(provider.converse(request([{ role: 'user', content: [{ type: 'text', text: 'Look at alert 7.' }] }])));
    expect(err).toBeInstanceOf(ScriptMismatchError);
    expect(err.message).toContain('turn 1 expectations not met: last message does not include "alert 42"');
  });

  it('fails when the tools offered differ from the expected ones, naming both', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const err = await rejection(provider.converse(request([FIRST], TOOLS.slice(0, 1))));
    expect(err).toBeInstanceOf(ScriptMismatchError);
    expect(err.message).toContain('tools offered echo but expected echo,lookup');
  });

  it('accepts the expected tools in any order', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    await expect(provider.converse(request([FIRST], [...TOOLS].reverse()))).resolves.toMatchObject({ stopReason: 'tool_use' });
  });

  it('names every unmet expectation of the turn', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const err = await rejection(provider.converse(request([{ role: 'user', content: [{ type: 'text', text: 'nothing' }] }], [])));
    expect(err.message).toContain('last message does not include');
    expect(err.message).toContain('tools offered');
  });

  describe('assertComplete', () => {
    it('passes for the request that played the last turn', () => {
      expect(() => new ScriptedModelProvider(SCRIPT).assertComplete(turn2())).not.toThrow();
    });

    it('fails when turns are left over, naming how many', () => {
      const err = (() => {
        try {
          new ScriptedModelProvider(SCRIPT).assertComplete(turn1());
        } catch (e) {
          return e as Error;
        }
        throw new Error('expected a throw');
      })();
      expect(err).toBeInstanceOf(ScriptMismatchError);
      expect(err.name).toBe('ScriptMismatchError');
      expect(err.message).toContain('the run ended after turn 1 but the script has 1 leftover turn(s)');
    });
  });

  it('cuts an answer longer than the request allows at maxTokens, as a provider does', async () => {
    const provider = new ScriptedModelProvider(SCRIPT);
    const answer = await provider.converse({ ...turn1(), maxTokens: 1 });
    expect(answer).toMatchObject({ stopReason: 'max_tokens', usage: { inputTokens: 10, outputTokens: 1 } });
    const within = await new ScriptedModelProvider(SCRIPT).converse({ ...turn1(), maxTokens: 2 });
    expect(within).toMatchObject({ stopReason: 'tool_use', usage });
  });

  it('names itself scripted', () => {
    expect(new ScriptedModelProvider(SCRIPT).name).toBe('scripted');
  });
});
