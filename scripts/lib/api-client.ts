/**
 * A client of the runtime's HTTP API. Requests are SigV4-signed (service
 * `execute-api`) with the ambient AWS credentials, as the API's IAM
 * authorization requires.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { PendingApproval, RunStatus, StartRunResponse } from '../../lambdas/core/contracts/api';
import type { EventLogRecord } from '../../lambdas/core/contracts/events';

/** An HTTP answer that was not 2xx. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}: ${JSON.stringify(body)}`);
  }
}

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

  /** POST /agents/{agent}/runs */
  async startRun(agent: string, input: unknown, idempotencyKey?: string): Promise<StartRunResponse> {
    const headers: Record<string, string> = idempotencyKey ? { 'idempotency-key': idempotencyKey } : {};
    return (await this.request<StartRunResponse>('POST', `agents/${agent}/runs`, { input }, headers)).body;
  }

  /** GET /runs/{sessionId} */
  async getRun(sessionId: string): Promise<RunStatus> {
    return (await this.request<RunStatus>('GET', `runs/${sessionId}`)).body;
  }

  /** GET /runs/{sessionId}/events */
  async getEvents(sessionId: string): Promise<EventLogRecord[]> {
    return (await this.request<{ events: EventLogRecord[] }>('GET', `runs/${sessionId}/events`)).body.events;
  }

  /** POST /approvals/{approvalId} */
  async decide(approvalId: string, decision: 'approve' | 'reject', reason?: string, decidedBy?: string): Promise<{ approvalId: string; status: string }> {
    return (await this.request<{ approvalId: string; status: string }>('POST', `approvals/${approvalId}`, { decision, reason, decidedBy })).body;
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
