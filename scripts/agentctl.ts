#!/usr/bin/env node
/**
 * agentctl: the runtime's command line.
 *
 *   agentctl example [--approve | --reject <reason>]   the main job (see README, Quick start)
 *   agentctl status <sessionId>                        a run's status and pending approvals
 *   agentctl events <sessionId>                        a session's event log, in order
 *   agentctl checkpoints <sessionId>                   a session's checkpoints (DynamoDB)
 *   agentctl approve <approvalId> | reject <approvalId> --reason <text>
 *   agentctl deploy                                    deploy the example stack (local cloud unless configured otherwise)
 *   agentctl cloud up|down|status                      the local AWS cloud
 *
 * Target: the local cloud by default; `AGENT_RUNTIME_TARGET=aws` (ambient credentials) or
 * AWS_ENDPOINT_URL pointing elsewhere selects another.
 */
import '../lib/text-assets';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline/promises';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutEventsCommand, EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DescribeExecutionCommand, DescribeStateMachineCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { Command } from 'commander';
import { sessionIdFor } from '../lambdas/core/ids';
import { RuntimeApiClient } from './lib/api-client';
import { apiBaseUrl, deploy, localCloudDown, localCloudUp, ROOT, targetsLocalCloud, useLocalCloudEnv, type StackOutputs } from './lib/cloud';
import { describeToolEvent, formatProgress, HistoryCursor } from './lib/follow';

const STACK = 'AgentRuntime';
const APP = 'npx tsx bin/app.ts';
const AGENT = 'ssh-investigator';
/** The example publishes replayed findings under this source: AWS reserves `aws.*` sources for AWS services. */
const REPLAY_SOURCE = 'agent-runtime.replay';
const EVENT_FILE = path.join(ROOT, 'examples', 'ssh-brute-force', 'events', 'guardduty-ssh-brute-force.json');

const say = (line: string): void => console.log(line);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Brings the target up and the stack deployed; a second call reuses both. */
async function ensureDeployed(): Promise<StackOutputs> {
  useLocalCloudEnv();
  if (targetsLocalCloud()) {
    say(localCloudUp() ? 'local cloud: started' : 'local cloud: already running (reused)');
  }
  const cached = path.join(ROOT, '.local-cloud', `${STACK}-outputs.json`);
  const fingerprint = sourceFingerprint();
  const stamp = path.join(ROOT, '.local-cloud', `${STACK}-fingerprint`);
  if (fs.existsSync(cached) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === fingerprint) {
    const outputs = (JSON.parse(fs.readFileSync(cached, 'utf8')) as Record<string, StackOutputs>)[STACK];
    if (outputs && (await stackIsThere(outputs))) {
      say(`stack ${STACK}: deployed and unchanged (reused)`);
      return outputs;
    }
  }
  const started = Date.now();
  const outputs = deploy(APP, STACK, (l) => say(`stack ${STACK}: ${l}`));
  fs.writeFileSync(stamp, fingerprint);
  say(`stack ${STACK}: deployed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return outputs;
}

async function stackIsThere(outputs: StackOutputs): Promise<boolean> {
  const arn = outputs[`StateMachine${AGENT.replace(/[^A-Za-z0-9]/g, '')}`];
  if (!arn) return false;
  try {
    await new SFNClient({}).send(new DescribeStateMachineCommand({ stateMachineArn: arn }));
    return true;
  } catch {
    return false;
  }
}

/** A hash of everything that goes into the stack, to skip a deploy that would change nothing. */
function sourceFingerprint(): string {
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else hash.update(p).update(fs.readFileSync(p));
    }
  };
  for (const dir of ['bin', 'lib', 'lambdas', 'statemachines', 'examples']) walk(path.join(ROOT, dir));
  hash.update(fs.readFileSync(path.join(ROOT, 'package-lock.json')));
  return hash.digest('hex');
}

function api(outputs: StackOutputs): RuntimeApiClient {
  const url = outputs.ApiUrl;
  if (!url) throw new Error('stack has no ApiUrl output');
  return new RuntimeApiClient(apiBaseUrl(url));
}

interface ExampleOptions {
  approve?: boolean;
  reject?: string;
}

async function example(opts: ExampleOptions): Promise<void> {
  if (opts.approve && opts.reject !== undefined) throw new Error('give --approve or --reject, not both');
  const outputs = await ensureDeployed();
  const client = api(outputs);
  const sfn = new SFNClient({});
  const stateMachineArn = outputs[`StateMachine${AGENT.replace(/[^A-Za-z0-9]/g, '')}`] ?? '';

  const event = JSON.parse(fs.readFileSync(EVENT_FILE, 'utf8')) as { 'detail-type': string; detail: unknown; resources: string[] };
  const put = await new EventBridgeClient({}).send(
    new PutEventsCommand({ Entries: [{ Source: REPLAY_SOURCE, DetailType: event['detail-type'], Detail: JSON.stringify(event.detail), Resources: event.resources }] }),
  );
  const eventId = put.Entries?.[0]?.EventId;
  if (!eventId) throw new Error(`PutEvents failed: ${JSON.stringify(put.Entries)}`);
  const sessionId = sessionIdFor(AGENT, eventId);
  say(`\npublished GuardDuty finding (UnauthorizedAccess:EC2/SSHBruteForce) as event ${eventId}\nsession ${sessionId}\n`);

  // The rule starts the execution; the session head names it once Prepare has run.
  let executionArn = '';
  for (let i = 0; i < 120 && !executionArn; i++) {
    try {
      executionArn = (await client.getRun(sessionId)).executionArn;
    } catch {
      await sleep(250);
    }
  }
  if (!executionArn) throw new Error(`no execution started for event ${eventId} within 30 s (state machine ${stateMachineArn})`);
  say(`execution ${executionArn}\n`);

  const cursor = new HistoryCursor(sfn, executionArn);
  const printedTools = new Set<string>();
  const asked = new Set<string>();
  for (;;) {
    const lines = await cursor.next();
    for (const row of await client.getEvents(sessionId)) {
      const line = describeToolEvent(row);
      if (line && !printedTools.has(row.seq)) {
        printedTools.add(row.seq);
        lines.push(line);
      }
    }
    for (const line of lines.sort((a, b) => a.at.getTime() - b.at.getTime())) say(formatProgress(line));
    const run = await client.getRun(sessionId);
    for (const pending of run.pendingApprovals) {
      if (asked.has(pending.approvalId)) continue;
      asked.add(pending.approvalId);
      await decide(client, pending.approvalId, pending.tool, pending.input, opts);
    }
    const status = (await sfn.send(new DescribeExecutionCommand({ executionArn }))).status;
    if (status !== 'RUNNING') {
      for (const line of await cursor.next()) say(formatProgress(line));
      break;
    }
    await sleep(300);
  }

  const run = await client.getRun(sessionId);
  if (run.status === 'SUCCEEDED') {
    say('\nIncident report (validated against the agent\'s output schema):\n');
    say(JSON.stringify(run.output, null, 2));
  } else {
    say(`\nRun ${run.status}: ${JSON.stringify(run.failure)}`);
    process.exitCode = 1;
  }
  say(`\nexecution ARN: ${executionArn}`);
  say(`session id:    ${sessionId}`);
  say('\nRead the session:');
  say(`  npm run agentctl -- checkpoints ${sessionId}    # checkpoints (DynamoDB table ${outputs.CheckpointTableName ?? ''})`);
  say(`  npm run agentctl -- events ${sessionId}         # the event log, in order (table ${outputs.EventTableName ?? ''})`);
  say(`  npm run agentctl -- status ${sessionId}`);
}

async function decide(client: RuntimeApiClient, approvalId: string, tool: string, input: unknown, opts: ExampleOptions): Promise<void> {
  say(`\napproval ${approvalId}: the agent asks to run ${tool} with ${JSON.stringify(input, null, 2)}`);
  let decision: 'approve' | 'reject';
  let reason: string | undefined;
  if (opts.approve) decision = 'approve';
  else if (opts.reject !== undefined) [decision, reason] = ['reject', opts.reject];
  else if (process.stdin.isTTY) {
    const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
    const answer = (await rl.question('Approve? [y/N] ')).trim().toLowerCase();
    decision = answer === 'y' || answer === 'yes' ? 'approve' : 'reject';
    if (decision === 'reject') reason = (await rl.question('Reason: ')).trim() || 'rejected by operator';
    rl.close();
  } else {
    throw new Error(`approval ${approvalId} is waiting and there is no terminal to ask: rerun with --approve or --reject <reason>, or answer with: npm run agentctl -- approve ${approvalId}`);
  }
  const result = await client.decide(approvalId, decision, reason, process.env.USER ?? 'agentctl');
  say(`approval ${approvalId}: ${result.status}${opts.approve || opts.reject !== undefined ? ' (given by flag)' : ''}\n`);
}

async function withOutputs<T>(fn: (outputs: StackOutputs) => Promise<T>): Promise<T> {
  useLocalCloudEnv();
  const file = path.join(ROOT, '.local-cloud', `${STACK}-outputs.json`);
  if (!fs.existsSync(file)) throw new Error(`no deployed stack recorded in ${file}: run \`npm run example\` or \`npm run agentctl -- deploy\` first`);
  const outputs = (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, StackOutputs>)[STACK];
  if (!outputs) throw new Error(`${file} has no ${STACK} outputs`);
  return fn(outputs);
}

const program = new Command('agentctl').description('Run and inspect agents of the agent runtime').showHelpAfterError();
program
  .command('example')
  .description('bring up the local cloud if needed, deploy, publish the GuardDuty finding, follow the run, approve, print the report')
  .option('--approve', 'approve the block without asking')
  .option('--reject <reason>', 'reject the block without asking, with this reason')
  .action((opts: ExampleOptions) => example(opts));
program
  .command('status <sessionId>')
  .action((id: string) => withOutputs(async (o) => say(JSON.stringify(await api(o).getRun(id), null, 2))));
program
  .command('events <sessionId>')
  .action((id: string) =>
    withOutputs(async (o) => {
      for (const e of await api(o).getEvents(id)) say(`${e.at}  ${e.type.padEnd(20)} ${e.checkpointKey}`);
    }),
  );
program
  .command('checkpoints <sessionId>')
  .action((id: string) =>
    withOutputs(async (o) => {
      const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}));
      const out = await doc.send(new QueryCommand({ TableName: o.CheckpointTableName, KeyConditionExpression: 'sessionId = :s', ExpressionAttributeValues: { ':s': id } }));
      for (const item of out.Items ?? []) say(JSON.stringify(item));
    }),
  );
program.command('approve <approvalId>').action((id: string) => withOutputs(async (o) => say(JSON.stringify(await api(o).decide(id, 'approve', undefined, process.env.USER)))));
program
  .command('reject <approvalId>')
  .requiredOption('--reason <text>', 'why')
  .action((id: string, opts: { reason: string }) => withOutputs(async (o) => say(JSON.stringify(await api(o).decide(id, 'reject', opts.reason, process.env.USER)))));
program.command('deploy').action(async () => void (await ensureDeployed()));
program
  .command('cloud <action>')
  .description('up | down | status')
  .action(async (action: string) => {
    if (action === 'up') localCloudUp();
    else if (action === 'down') localCloudDown();
    else say(execFileSync('bash', [path.join(ROOT, 'scripts/local-cloud.sh'), 'status'], { encoding: 'utf8' }).trim());
  });

program.parseAsync().catch((err: unknown) => {
  console.error(`agentctl: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
