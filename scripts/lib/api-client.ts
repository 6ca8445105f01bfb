/**
 * A client of the runtime's HTTP API. Requests are SigV4-signed (service
 * `execute-api`) with the ambient AWS credentials, as the API's IAM
 * authorization requires.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type {
  RaiseBudgetRequest,
  RaiseBudgetResponse,
  StartRunRequest,
  StopRunRequest,
  StopRunResponse,
  CancelRunRequest,
  CancelRunResponse,
  PendingApproval,
  ResumeRunRequest,
  ResumeRunResponse,
  RollbackRunRequest,
  RollbackRunResponse,
  RunStatus,
  StartRunResponse,
} from '../../lambdas/core/contracts/api';
import type { EventLogRecord } from '../../lambdas/core/contracts/events';

/**
 * An HTTP answer that was not 2xx: its status and parsed body (`{error, message,
 * issues?}` for the runtime's own answers). The message reads
 * `HTTP 409 NotResumable: session … is RUNNING; …` when the body is such a problem.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(ApiError.describe(status, body));
  }

  private static describe(status: number, body: unknown): string {
    const p = body as { error?: unknown; message?: unknown; issues?: unknown } | undefined;
    if (typeof p?.error !== 'string' || typeof p.message !== 'string') return `HTTP ${status}: ${JSON.stringify(body)}`;
    const issues = Array.isArray(p.issues) ? p.issues.map((i) => `\n  ${String(i)}`).join('') : '';
    return `HTTP ${status} ${p.error}: ${p.message}${issues}`;
  }
}

/** The runtime's HTTP API, signed with the ambient AWS credentials. */
export class RuntimeApiClient {
  private readonly signer: SignatureV4;

  constructor(
    private readonly baseUrl: string,
    region = process.env.AWS_REGION ?? 'us-east-1',
  ) {
    this.signer = new SignatureV4({ service: 'execute-api', region, credentials: defaultProvider(), sha256: Hash.bind(null, 'sha256') });
  }

  /** Sends a signed request. @throws ApiError on a non-2xx answer. */
  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
    const url = new URL(path.replace(/^\//, ''), this.baseUrl);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const signed = await this.signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: { host: url.host, 'content-type': 'application/json', ...headers },
      body: payload,
    });
    const res = await fetch(url, { method, headers: signed.headers as Record<string, string>, body: payload });
    const text = await res.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (!res.ok) throw new ApiError(res.status, parsed);
    return { status: res.status, body: parsed as T };
  }

  /** POST /agents/{agent}/runs, with the request's principal, budgets and depth when given. */
  async startRun(agent: string, input: unknown, idempotencyKey?: string, extra: Omit<StartRunRequest, 'input' | 'idempotencyKey'> = {}): Promise<StartRunResponse> {
    const headers: Record<string, string> = idempotencyKey ? { 'idempotency-key': idempotencyKey } : {};
    return (await this.request<StartRunResponse>('POST', `agents/${agent}/runs`, { input, ...extra }, headers)).body;
  }

  /**
   * POST /runs/{sessionId}/budget: sets the run's budgets (each field the new limit); a paused run resumes.
   * @throws ApiError 400 (fields), 404, 409 (`NotRaisable`, `Conflict`).
   */
  async raiseBudget(sessionId: string, body: RaiseBudgetRequest): Promise<RaiseBudgetResponse> {
    return (await this.request<RaiseBudgetResponse>('POST', `runs/${sessionId}/budget`, body)).body;
  }

  /**
   * POST /runs/{sessionId}/stop: ends a run paused on a budget, its partial results kept.
   * @throws ApiError 400 (reason), 404, 409 (`NotStoppable`, `Conflict`).
   */
  async stop(sessionId: string, body: StopRunRequest): Promise<StopRunResponse> {
    return (await this.request<StopRunResponse>('POST', `runs/${sessionId}/stop`, body)).body;
  }

  /** GET /runs/{sessionId} */
  async getRun(sessionId: string): Promise<RunStatus> {
    return (await this.request<RunStatus>('GET', `runs/${sessionId}`)).body;
  }

  /** GET /runs/{sessionId}/events */
  async getEvents(sessionId: string): Promise<EventLogRecord[]> {
    const rows: EventLogRecord[] = [];
    let after: string | undefined;
    do {
      const path = `runs/${sessionId}/events${after ? `?after=${after}` : ''}`;
      const page = (await this.request<{ events: EventLogRecord[]; nextAfter?: string }>('GET', path)).body;
      rows.push(...page.events);
      after = page.nextAfter;
    } while (after);
    return rows;
  }

  /** POST /approvals/{approvalId} */
  async decide(approvalId: string, decision: 'approve' | 'reject', reason?: string, decidedBy?: string): Promise<{ approvalId: string; status: string }> {
    return (await this.request<{ approvalId: string; status: string }>('POST', `approvals/${approvalId}`, { decision, reason, decidedBy })).body;
  }

  /**
   * POST /runs/{sessionId}/resume: resumes a FAILED run in a new execution.
   * @returns `created: false` when a repeated request found it started.
   * @throws ApiError 404 (unknown session), 409 (`NotResumable`, `ExecutionConflict`).
   */
  async resume(sessionId: string, body: ResumeRunRequest = {}): Promise<ResumeRunResponse> {
    return (await this.request<ResumeRunResponse>('POST', `runs/${sessionId}/resume`, body)).body;
  }

  /**
   * POST /runs/{sessionId}/cancel: cancels a RUNNING run (`reason` required).
   * @throws ApiError 400 (reason), 404, 409 (`NotCancellable`, `Conflict`).
   */
  async cancel(sessionId: string, body: CancelRunRequest): Promise<CancelRunResponse> {
    return (await this.request<CancelRunResponse>('POST', `runs/${sessionId}/cancel`, body)).body;
  }

  /**
   * POST /runs/{sessionId}/rollback: rolls a run back to model turn `toStep` and continues it.
   * @throws ApiError 400 (`InvalidRollback`, fields), 404, 409 (`NotRollbackable`, `Conflict`, `ExecutionConflict`).
   */
  async rollback(sessionId: string, body: RollbackRunRequest): Promise<RollbackRunResponse> {
    return (await this.request<RollbackRunResponse>('POST', `runs/${sessionId}/rollback`, body)).body;
  }

  /**
   * Polls until the run has a pending approval (a session not created yet counts as waiting).
   * @throws Error after `timeoutMs`, or when the run ends without asking.
   */
  async waitForApproval(sessionId: string, timeoutMs = 60_000): Promise<PendingApproval> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.getRun(sessionId).catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 404) return undefined;
        throw err;
      });
      const pending = run?.pendingApprovals[0];
      if (pending) return pending;
      if (run && run.status !== 'RUNNING') throw new Error(`run ${sessionId} ended ${run.status} without asking for approval`);
      if (Date.now() > until) throw new Error(`no approval requested by ${sessionId} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
