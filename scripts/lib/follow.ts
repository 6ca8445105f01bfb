/**
 * Follows an execution as it runs, printing each state as it finishes (state,
 * detail, duration) from the execution history and the session's event log; and
 * a session across its executions ({@link SessionFollower}: continue-as-new,
 * resume and rollback start new ones).
 */
import { DescribeExecutionCommand, paginateGetExecutionHistory, type HistoryEvent, type SFNClient } from '@aws-sdk/client-sfn';
import type { EventLogRecord } from '../../lambdas/core/contracts/events';

/** One line of progress. */
export interface Progress {
  readonly at: Date;
  readonly state: string;
  readonly durationMs?: number;
  readonly detail: string;
}

/** An execution's whole history, in order (every page of GetExecutionHistory). */
export async function executionHistory(sfn: SFNClient, executionArn: string): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  for await (const page of paginateGetExecutionHistory({ client: sfn }, { executionArn, maxResults: 1000 })) events.push(...(page.events ?? []));
  return events;
}

/** Reads new history events of one execution since the last call (paginating), in order. */
export class HistoryCursor {
  private seen = 0;
  private readonly entered = new Map<string, Date>();
  constructor(
    private readonly sfn: SFNClient,
    readonly executionArn: string,
  ) {}

  /** Finished states since the last call. */
  async next(): Promise<Progress[]> {
    const events = await executionHistory(this.sfn, this.executionArn);
    const fresh = events.slice(this.seen);
    this.seen = events.length;
    const lines: Progress[] = [];
    for (const e of fresh) {
      const at = e.timestamp ?? new Date();
      const entered = e.stateEnteredEventDetails;
      if (entered?.name) {
        this.entered.set(entered.name, at);
        if (entered.name === 'RunTools') lines.push({ at, state: 'RunTools', detail: 'running tool calls' });
      }
      const exited = e.stateExitedEventDetails;
      if (exited?.name) {
        const start = this.entered.get(exited.name);
        lines.push({ at, state: exited.name, durationMs: start ? at.getTime() - start.getTime() : undefined, detail: describe(exited.name, exited.output) });
      }
      if (e.executionFailedEventDetails) lines.push({ at, state: 'ExecutionFailed', detail: `${e.executionFailedEventDetails.error ?? ''}: ${e.executionFailedEventDetails.cause ?? ''}` });
      if (e.type === 'ExecutionSucceeded') lines.push({ at, state: 'ExecutionSucceeded', detail: '' });
    }
    return lines;
  }
}

/** What a {@link SessionFollower} needs of the session head (the API's RunStatus has it). */
export interface SessionHead {
  readonly executionArn: string;
  readonly status: string;
  /** Executions the session has had. */
  readonly executions?: number;
}

/**
 * Follows a session across its executions. Each {@link poll} is given the session
 * head as just read; when the head names another execution (the session continued
 * as new, or was resumed or rolled back), the rest of the old execution's history
 * is read, a line marks the change, and the new execution is followed.
 */
export class SessionFollower {
  private cursor: HistoryCursor | undefined;

  constructor(private readonly sfn: SFNClient) {}

  /** The execution followed now (empty before the first poll). */
  get executionArn(): string {
    return this.cursor?.executionArn ?? '';
  }

  /**
   * Finished states since the last call, across executions.
   * @returns the lines, and `finished` once the session is no longer RUNNING and its
   *   current execution has ended too (so its last states are in the lines).
   */
  async poll(head: SessionHead): Promise<{ lines: Progress[]; finished: boolean }> {
    const lines: Progress[] = [];
    if (this.cursor?.executionArn !== head.executionArn) {
      if (this.cursor) {
        lines.push(...(await this.cursor.next()));
        const name = head.executionArn.split(':').pop() ?? head.executionArn;
        lines.push({ at: new Date(), state: 'Execution', detail: `session continues in ${name}${head.executions ? ` (execution ${head.executions})` : ''}` });
      }
      this.cursor = new HistoryCursor(this.sfn, head.executionArn);
    }
    lines.push(...(await this.cursor.next()));
    if (head.status === 'RUNNING') return { lines, finished: false };
    const status = (await this.sfn.send(new DescribeExecutionCommand({ executionArn: head.executionArn }))).status;
    if (status === 'RUNNING') return { lines, finished: false };
    lines.push(...(await this.cursor.next()));
    return { lines, finished: true };
  }
}

function describe(state: string, output: string | undefined): string {
  let out: Record<string, unknown> = {};
  try {
    out = output ? (JSON.parse(output) as Record<string, unknown>) : {};
  } catch {
    return '';
  }
  if (state === 'ModelTurn') {
    const calls = Array.isArray(out.calls) ? (out.calls as { tool: string; needsApproval: boolean }[]).map((c) => c.tool + (c.needsApproval ? ' (needs approval)' : '')) : [];
    return `step ${String(out.step)} → ${String(out.outcome)}${calls.length ? ': ' + calls.join(', ') : ''}`;
  }
  if (state === 'Prepare') return `session ${String(out.sessionId)} ${String(out.outcome)}`;
  if (state === 'RecordFailure') return `${String(out.error)}: ${String(out.cause)}`;
  return '';
}

/** A tool call's line from its event log row. */
export function describeToolEvent(row: EventLogRecord): Progress | undefined {
  if (row.type !== 'ToolCallCompleted') return undefined;
  const r = row.record as { tool?: string; status?: string; durationMs?: number; createdAt?: string; approval?: { decision?: string } };
  const approval = r.approval?.decision && r.approval.decision !== 'not_required' ? ` (approval ${r.approval.decision})` : '';
  return { at: new Date(r.createdAt ?? row.at), state: `  tool ${r.tool ?? '?'}`, durationMs: r.durationMs, detail: `${r.status ?? '?'}${approval}` };
}

/** Formats a progress line: time, state, detail, duration. */
export function formatProgress(p: Progress): string {
  const time = p.at.toISOString().slice(11, 23);
  const dur = p.durationMs === undefined ? '' : `${p.durationMs} ms`;
  return `${time}  ${p.state.padEnd(22)} ${p.detail.padEnd(60)} ${dur}`.trimEnd();
}
