/**
 * Benchmark of the agent loop on the local cloud: the same echo agent at 5 and
 * 50 turns (one tool call per turn, 2 KB tool results). Measures, per run: state
 * transitions per turn (StateEntered history events), the largest state
 * input/output in bytes (it must not grow with the number of turns: the payload
 * is a pointer), checkpoint and event-log rows, and wall time per turn.
 *
 *   npm run bench            (starts the local cloud if needed and deploys the integ stack)
 *
 * Results go to stdout and to bench/results/loop-<date>.md. Record the machine with them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeExecutionCommand, GetExecutionHistoryCommand, SFNClient, type HistoryEvent } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { RuntimeApiClient } from '../scripts/lib/api-client';
import { apiBaseUrl, deploy, localCloudDown, localCloudUp, ROOT, targetsLocalCloud, useLocalCloudEnv } from '../scripts/lib/cloud';

interface Row {
  agent: string;
  turns: number;
  transitions: number;
  transitionsPerTurn: number;
  maxPayloadBytes: number;
  checkpointRows: number;
  eventRows: number;
  msPerTurn: number;
}

async function main(): Promise<void> {
  useLocalCloudEnv();
  const started = targetsLocalCloud() ? localCloudUp() : false;
  try {
    const outputs = deploy('npx tsx test/integ/app.ts', 'AgentRuntimeInteg', (l) => console.error(`[bench] ${l}`));
    const api = new RuntimeApiClient(apiBaseUrl(outputs.ApiUrl ?? ''));
    const sfn = new SFNClient({});
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}));
    const rows: Row[] = [];
    for (const [agent, turns] of [['bench-echo-5', 5], ['bench-echo-50', 50]] as const) {
      const t0 = Date.now();
      const run = await api.startRun(agent, { question: 'echo' }, `bench-${Date.now()}`);
      let status = 'RUNNING';
      while (status === 'RUNNING') {
        await new Promise((r) => setTimeout(r, 200));
        status = (await sfn.send(new DescribeExecutionCommand({ executionArn: run.executionArn }))).status ?? '';
      }
      const ms = Date.now() - t0;
      if (status !== 'SUCCEEDED') throw new Error(`${agent} ended ${status}`);
      const events: HistoryEvent[] = [];
      let nextToken: string | undefined;
      do {
        const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn: run.executionArn, maxResults: 1000, nextToken }));
        events.push(...(page.events ?? []));
        nextToken = page.nextToken;
      } while (nextToken);
      const transitions = events.filter((e) => e.type?.endsWith('StateEntered')).length;
      const payloads = events.flatMap((e) => [e.stateEnteredEventDetails?.input, e.stateExitedEventDetails?.output]).filter((p): p is string => p !== undefined);
      const maxPayloadBytes = Math.max(...payloads.map((p) => Buffer.byteLength(p)));
      const cps = await doc.send(new QueryCommand({ TableName: outputs.CheckpointTableName, KeyConditionExpression: 'sessionId = :s', ExpressionAttributeValues: { ':s': run.sessionId }, Select: 'COUNT' }));
      await new Promise((r) => setTimeout(r, 2000)); // let the projector catch up
      const log = await api.getEvents(run.sessionId);
      rows.push({
        agent,
        turns,
        transitions,
        transitionsPerTurn: Number((transitions / turns).toFixed(2)),
        maxPayloadBytes,
        checkpointRows: cps.Count ?? 0,
        eventRows: log.length,
        msPerTurn: Math.round(ms / turns),
      });
    }
    const header = '| agent | turns | transitions | transitions/turn | largest state payload (bytes) | checkpoint rows | event-log rows | ms/turn |';
    const table = [header, '|---|---|---|---|---|---|---|---|', ...rows.map((r) => `| ${r.agent} | ${r.turns} | ${r.transitions} | ${r.transitionsPerTurn} | ${r.maxPayloadBytes} | ${r.checkpointRows} | ${r.eventRows} | ${r.msPerTurn} |`)].join('\n');
    const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${targetsLocalCloud() ? 'local cloud (MiniStack)' : process.env.AWS_ENDPOINT_URL ?? 'AWS'}`;
    const report = `# Agent loop benchmark, ${new Date().toISOString().slice(0, 10)}\n\nMachine: ${machine}\n\n${table}\n`;
    console.log(report);
    const dir = path.join(ROOT, 'bench', 'results');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `loop-${new Date().toISOString().slice(0, 10)}.md`), report);
  } finally {
    if (started) localCloudDown();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
