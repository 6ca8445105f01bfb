/**
 * Durability benchmark on the local cloud: runs of 10, 100, 1,000 and 3,000 turns
 * (scripted model, one `produce` call per turn, a 50 KB tool result each turn,
 * stored in S3 by reference), at the real 25,000-event history limit.
 *
 * Per run it measures:
 * - the largest state payload in bytes (every state input and output in the
 *   histories of all the session's executions): it must be flat in the number of turns;
 * - history events per turn, twice: as the emulator recorded them, and as the
 *   runtime accounted them for AWS (`core/history.ts`; the `events` count in the
 *   payload at the end of each execution), which decides continue-as-new;
 * - state transitions per turn (StateEntered events; the emulator does not record
 *   the Map's iteration states, AWS does: 5 per one-tool turn there);
 * - DynamoDB requests per turn, reads and writes, counted by the steps' own SDK
 *   clients (model turn and tool call log lines, Powertools idempotency included);
 * - executions per session, and wall time.
 *
 *   npm run bench [-- 10 100]   (turn counts to run; default 10 100 1000 3000)
 *
 * Starts the local cloud if needed and deploys stack `AgentRuntimeBench` (bench/app.ts).
 * Results go to stdout and bench/results/durable-<date>.md, with the machine.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CloudWatchLogsClient, FilterLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient, ListFunctionsCommand } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, paginateQuery } from '@aws-sdk/lib-dynamodb';
import { STANDARD_EXECUTION_HISTORY_LIMIT } from '../lambdas/core/constants';
import { RuntimeApiClient } from '../scripts/lib/api-client';
import { apiBaseUrl, deploy, localCloudDown, localCloudUp, ROOT, targetsLocalCloud, useLocalCloudEnv } from '../scripts/lib/cloud';
import { executionHistory } from '../scripts/lib/follow';

/** What the columns mean, written under the table. */
const NOTES = `
Notes:
- Largest state payload: every state input and output of every execution of the session. Runs that continue as new also pass the ContinueAsNew state, whose input carries the continuation (next execution name, parent execution ARN): a constant of about 250 bytes more, the same at any length. The loop's per-turn states stay near 500 bytes; the counters' digits are all that grows.
- History events: the emulator omits TaskStarted and the Map's iteration events; "AWS, accounted" is the runtime's own count (\`lambdas/core/history.ts\`), which decides continue-as-new. A run continues before an execution's count plus one worst-case turn and the ending (625 events) would reach 25,000, so no execution passes 24,375.
- DynamoDB requests (not capacity units) per turn, from the model-turn and tool-call log lines (Powertools idempotency included). Writes per turn are flat: model turn 4 (idempotency put and complete, the fenced checkpoint transaction, the head), tool 3. Reads grow slowly with the run: the model turn queries the session's whole checkpoint chain, one more 1 MB page per few thousand records.
- Wall time is the emulator's, on 2 cores, while other work ran beside it; it grows with the run because of the chain query above.
`;

const READS = new Set(['GetItem', 'Query', 'BatchGetItem', 'TransactGetItems', 'Scan']);

interface Row {
  turns: number;
  executions: number;
  maxPayloadBytes: number;
  recordedEventsPerTurn: number;
  accountedEventsPerTurn: number;
  maxAccountedEvents: number;
  transitionsPerTurn: number;
  readsPerTurn: number;
  writesPerTurn: number;
  minutes: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const per = (n: number, turns: number): number => Number((n / turns).toFixed(2));

/** Sums the `dynamodb` request counts of the session's step log lines in the given log groups. */
async function dynamodbRequests(logs: CloudWatchLogsClient, groups: string[], sessionId: string): Promise<{ reads: number; writes: number; lines: number }> {
  let reads = 0;
  let writes = 0;
  let lines = 0;
  for (const logGroupName of groups) {
    let nextToken: string | undefined;
    do {
      const page = await logs.send(new FilterLogEventsCommand({ logGroupName, filterPattern: `"${sessionId}"`, nextToken })).catch((err: unknown) => {
        if ((err as { name?: string }).name === 'ResourceNotFoundException') return { events: [], nextToken: undefined };
        throw err;
      });
      for (const e of page.events ?? []) {
        let line: { sessionId?: string; dynamodb?: Record<string, number> };
        try {
          line = JSON.parse(e.message ?? '{}') as typeof line;
        } catch {
          continue;
        }
        if (line.sessionId !== sessionId || !line.dynamodb) continue;
        lines++;
        for (const [op, n] of Object.entries(line.dynamodb)) {
          if (READS.has(op)) reads += n;
          else writes += n;
        }
      }
      nextToken = page.nextToken;
    } while (nextToken);
  }
  return { reads, writes, lines };
}

async function main(): Promise<void> {
  const counts = process.argv.slice(2).map(Number).filter((n) => n > 0);
  const runs = counts.length > 0 ? counts : [10, 100, 1000, 3000];
  useLocalCloudEnv();
  const started = targetsLocalCloud() ? localCloudUp() : false;
  try {
    const outputs = deploy('npx tsx bench/app.ts', 'AgentRuntimeBench', (l) => console.error(`[bench] ${l}`));
    const api = new RuntimeApiClient(apiBaseUrl(outputs.ApiUrl ?? ''));
    const sfn = new SFNClient({});
    const logs = new CloudWatchLogsClient({});
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}));
    const functions = (await new LambdaClient({}).send(new ListFunctionsCommand({ MaxItems: 1000 }))).Functions ?? [];
    const rows: Row[] = [];
    for (const turns of runs) {
      const agent = `bench-durable-${turns}`;
      const t0 = Date.now();
      const run = await api.startRun(agent, { question: 'produce' }, `bench-${Date.now()}`);
      let status = 'RUNNING';
      let lastReport = 0;
      for (;;) {
        await sleep(1000);
        const s = await api.getRun(run.sessionId);
        status = s.status;
        if (status !== 'RUNNING') break;
        if (Date.now() - lastReport > 30_000) {
          console.error(`[bench] ${agent}: step ${s.step}/${turns + 1}, execution ${s.executions}, ${((Date.now() - t0) / 60000).toFixed(1)} min`);
          lastReport = Date.now();
        }
      }
      const ms = Date.now() - t0;
      if (status !== 'SUCCEEDED') throw new Error(`${agent} ended ${status}: ${JSON.stringify((await api.getRun(run.sessionId)).failure)}`);

      const executionArns: string[] = [];
      const query = { TableName: outputs.CheckpointTableName, KeyConditionExpression: 'sessionId = :s AND begins_with(sk, :e)', ExpressionAttributeValues: { ':s': run.sessionId, ':e': 'EXEC#' } };
      for await (const page of paginateQuery({ client: doc }, query)) executionArns.push(...(page.Items ?? []).map((i) => String(i.executionArn)));

      let maxPayloadBytes = 0;
      let recorded = 0;
      let accounted = 0;
      let maxAccounted = 0;
      let transitions = 0;
      for (const arn of executionArns) {
        const events = await executionHistory(sfn, arn);
        recorded += events.length;
        transitions += events.filter((e) => e.type?.endsWith('StateEntered')).length;
        let last = 0;
        for (const e of events) {
          for (const p of [e.stateEnteredEventDetails?.input, e.stateExitedEventDetails?.output]) {
            if (p === undefined) continue;
            maxPayloadBytes = Math.max(maxPayloadBytes, Buffer.byteLength(p));
            if (e.stateExitedEventDetails?.name === 'ModelTurn') last = Math.max(last, (JSON.parse(p) as { events?: number }).events ?? 0);
          }
        }
        accounted += last;
        maxAccounted = Math.max(maxAccounted, last);
      }
      const groups = functions
        .filter((f) => new RegExp(`benchdurable${turns}(ModelTurn|Tool)`).test(f.FunctionName ?? ''))
        .map((f) => f.LoggingConfig?.LogGroup ?? `/aws/lambda/${f.FunctionName ?? ''}`);
      await sleep(2000);
      const io = await dynamodbRequests(logs, groups, run.sessionId);
      rows.push({
        turns,
        executions: executionArns.length,
        maxPayloadBytes,
        recordedEventsPerTurn: per(recorded, turns),
        accountedEventsPerTurn: per(accounted, turns),
        maxAccountedEvents: maxAccounted,
        transitionsPerTurn: per(transitions, turns),
        readsPerTurn: per(io.reads, turns),
        writesPerTurn: per(io.writes, turns),
        minutes: Number((ms / 60000).toFixed(1)),
      });
      console.error(`[bench] ${agent}: ${JSON.stringify(rows.at(-1))} (${io.lines} step log lines)`);
    }
    const header =
      '| turns | executions | largest state payload (bytes) | history events/turn (emulator) | history events/turn (AWS, accounted) | most events in one execution (AWS, accounted) | state transitions/turn (emulator) | DynamoDB reads/turn | DynamoDB writes/turn | wall time (min) |';
    const table = [
      header,
      '|---|---|---|---|---|---|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.turns} | ${r.executions} | ${r.maxPayloadBytes} | ${r.recordedEventsPerTurn} | ${r.accountedEventsPerTurn} | ${r.maxAccountedEvents} | ${r.transitionsPerTurn} | ${r.readsPerTurn} | ${r.writesPerTurn} | ${r.minutes} |`,
      ),
    ].join('\n');
    const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${targetsLocalCloud() ? 'local cloud (MiniStack 1.5.33)' : (process.env.AWS_ENDPOINT_URL ?? 'AWS')}`;
    const report = [
      `# Durability benchmark, ${new Date().toISOString().slice(0, 10)}`,
      '',
      `Machine: ${machine}`,
      '',
      `Workload: scripted model, one \`produce\` call per turn, a 50 KB tool result each turn (stored in S3), history limit ${STANDARD_EXECUTION_HISTORY_LIMIT} (the real quota), context limit 256 KiB of tool results.`,
      '',
      table,
      NOTES,
    ].join('\n');
    console.log(report);
    const dir = path.join(ROOT, 'bench', 'results');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `durable-${new Date().toISOString().slice(0, 10)}.md`), report);
  } finally {
    if (started) localCloudDown();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
