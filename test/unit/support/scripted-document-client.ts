/**
 * A DynamoDB document client, scripted: each `send` takes the next expected answer
 * (which checks the command and answers it, or throws); a command no answer expects
 * fails the test. Every command is recorded. Suites subclass it with one method per
 * kind of answer, each calling {@link ScriptedDocumentClient.next}.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export class ScriptedDocumentClient<Sent extends object> {
  /** Every command sent, in order. */
  readonly sent: Sent[] = [];
  private readonly answers: Array<(command: Sent) => unknown> = [];

  /** The client to hand to the store under test. */
  readonly client = {
    send: async (command: Sent): Promise<unknown> => {
      this.sent.push(command);
      const answer = this.answers.shift();
      if (!answer) throw new Error(`unexpected ${command.constructor.name}: no answer scripted`);
      return answer(command);
    },
  } as unknown as DynamoDBDocumentClient;

  /** What is left unanswered. */
  get left(): number {
    return this.answers.length;
  }

  /** Adds the answer to the next `send`. */
  protected next(answer: (command: Sent) => unknown): this {
    this.answers.push(answer);
    return this;
  }
}
