/**
 * The format of a recorded conversation that the scripted provider replays.
 * Kept with the example or test that uses it, as JSON.
 */
import { z } from 'zod';
import { ModelResponseSchema } from './model';

/**
 * What the request of a turn must look like, so that a script cannot silently
 * drift from the run it drives.
 */
export const TurnExpectationSchema = z.object({
  /** Each string must occur in the tool results of the request's last message. */
  toolResultIncludes: z.array(z.string()).optional(),
  /** Each string must occur in the text of the request's last message. */
  lastMessageIncludes: z.array(z.string()).optional(),
  /** The tools offered must be exactly these names (any order). */
  tools: z.array(z.string()).optional(),
});

/** One recorded turn: the expectation on the request and the response to replay. */
export const ScriptedTurnSchema = z.object({
  expect: TurnExpectationSchema.optional(),
  response: ModelResponseSchema.omit({ modelId: true, requestId: true }),
});

/**
 * A recorded conversation.
 * Example: `{"schemaVersion":1,"modelId":"scripted/demo","turns":[{"response":{"content":[{"type":"text","text":"{}"}],"stopReason":"end_turn","usage":{"inputTokens":10,"outputTokens":2}}}]}`
 */
export const ScriptedConversationSchema = z.object({
  schemaVersion: z.literal(1),
  modelId: z.string(),
  turns: z.array(ScriptedTurnSchema).min(1),
});

export type TurnExpectation = z.infer<typeof TurnExpectationSchema>;
export type ScriptedTurn = z.infer<typeof ScriptedTurnSchema>;
export type ScriptedConversation = z.infer<typeof ScriptedConversationSchema>;
