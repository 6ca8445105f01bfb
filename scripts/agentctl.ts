#!/usr/bin/env node
/**
 * agentctl: the runtime's command line.
 *
 *   agentctl example [--approve | --reject <reason>]   the main job (see README, Quick start)
 *   agentctl status <sessionId> [--json]               a run's status: executions, branch, cancellation, pending approvals
 *   agentctl follow <sessionId> [--approve | --reject <reason>]
 *                                                      follow a run across its executions until it ends
 *   agentctl events <sessionId>                        a session's event log, in order
 *   agentctl checkpoints <sessionId>                   a session's checkpoints (DynamoDB)
 *   agentctl approve <approvalId> | reject <approvalId> --reason <text>
 *   agentctl resume <sessionId> [--reason <text>]      resume a FAILED run from its last good checkpoint
 *   agentctl cancel <sessionId> --reason <text>        cancel a RUNNING run (stops its executions)
 *   agentctl rollback <sessionId> --to-step <n> [--reason <text>]
 *                                                      roll a run back to model turn n and continue from there
 *   agentctl raise-budget <sessionId> [--cost-usd <usd>] [--input-tokens <n>] [--output-tokens <n>] [--steps <n>]
 *            [--wall-clock-seconds <n>] [--reason <text>]
 *                                                      set a run's budgets (new limits); a run paused on a budget resumes
 *   agentctl stop <sessionId> --reason <text>          stop a run paused on a budget (STOPPED, partial results kept)
 *   agentctl inject-fault <sessionId> <point> <mode> [--times <n>]
 *                                                      plan a fault (stacks deployed with fault injection only);
 *                                                      points: Prepare, ModelTurn, RunTool, RunTool.afterSideEffect,
 *                                                      RequestApproval; modes: throw, timeout, kill
 *   agentctl policy show <agent>                       the agent's policy override, if any (else the bundled policies apply)
 *   agentctl policy put <agent> <file> [--module <path>] [--export <name>]
 *                                                      validate a Cedar file against the agent's tools and write it as the
 *                                                      agent's override (applies from the next decision, even mid-run)
 *   agentctl policy remove <agent>                     delete the override: the bundled policies apply again
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
import { DescribeStateMachineCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { Command, InvalidArgumentError } from 'commander';
import type { FaultMode, FaultPoint } from '../lambdas/adapters/fault-injection';
import { PolicyStore } from '../lambdas/adapters/policy-engine';
import { BUDGET_PAUSE_TOOL_PREFIX } from '../lambdas/core/approvals';
import type { RunStatus } from '../lambdas/core/contracts/api';
import type { AgentDefinition } from '../lambdas/core/define';
import { sessionIdFor } from '../lambdas/core/ids';
import { policySchema } from '../lambdas/core/policy';
import { policyProblems } from '../lib/policy-check';
import { ApiError, RuntimeApiClient } from './lib/api-client';
import { apiBaseUrl, deploy, localCloudDown, localCloudUp, ROOT, targetsLocalCloud, useLocalCloudEnv, type StackOutputs } from './lib/cloud';
import { describeToolEvent, formatProgress, SessionFollower } from './lib/follow';

const STACK = 'AgentRuntime';
const APP = 'npx tsx bin/app.ts';
const AGENT = 'ssh-investigator';
/** The example publishes replayed findings under this source: AWS reserves `aws.*` sources for AWS services. */
const REPLAY_SOURCE = 'agent-runtime.replay';
const EVENT_FILE = path.join(ROOT, 'examples', 'ssh-brute-force', 'events', 'guardduty-ssh-brute-force.json');

/** Where faults can fire and how they fail (`lambdas/adapters/fault-injection.ts`). */
const FAULT_POINTS = ['Prepare', 'ModelTurn', 'RunTool', 'RunTool.afterSideEffect', 'RequestApproval'] as const satisfies readonly FaultPoint[];
const FAULT_MODES = ['throw', 'timeout', 'kill'] as const satisfies readonly FaultMode[];
/** Who asks, in control requests: the local user. */
const REQUESTED_BY = process.env.USER ?? 'agentctl';

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

  const { run, executionArn: lastExecutionArn } = await followSession(client, sessionId, opts);
  if (run.status === 'SUCCEEDED') {
    say('\nIncident report (validated against the agent\'s output schema):\n');
    say(JSON.stringify(run.output, null, 2));
  } else {
    say(`\nRun ${run.status}: ${JSON.stringify(run.failure)}`);
    process.exitCode = 1;
  }
  say(`\nexecution ARN: ${lastExecutionArn}${run.executions > 1 ? ` (execution ${run.executions} of the session; the first was ${executionArn})` : ''}`);
  say(`session id:    ${sessionId}`);
  say('\nRead the session:');
  say(`  npm run agentctl -- checkpoints ${sessionId}    # checkpoints (DynamoDB table ${outputs.CheckpointTableName ?? ''})`);
  say(`  npm run agentctl -- events ${sessionId}         # the event log, in order (table ${outputs.EventTableName ?? ''})`);
  say(`  npm run agentctl -- status ${sessionId}`);
}

/**
 * Follows a session until it ends, across its executions (continue-as-new, resume,
 * rollback): each finished state, each tool call, and each approval asked for.
 * @returns the run as it ended, and the last execution followed.
 */
async function followSession(client: RuntimeApiClient, sessionId: string, opts: ExampleOptions): Promise<{ run: RunStatus; executionArn: string }> {
  const follower = new SessionFollower(new SFNClient({}));
  const printedTools = new Set<string>();
  const asked = new Set<string>();
  for (;;) {
    const run = await client.getRun(sessionId);
    const { lines, finished } = await follower.poll(run);
    for (const row of await client.getEvents(sessionId)) {
      const line = describeToolEvent(row);
      if (line && !printedTools.has(row.seq)) {
        printedTools.add(row.seq);
        lines.push(line);
      }
    }
    for (const line of lines.sort((a, b) => a.at.getTime() - b.at.getTime())) say(formatProgress(line));
    for (const pending of run.pendingApprovals) {
      if (asked.has(pending.approvalId)) continue;
      asked.add(pending.approvalId);
      // A budget pause is answered by raise-budget or stop, not by an approval.
      if (pending.tool.startsWith(BUDGET_PAUSE_TOOL_PREFIX)) continue;
      await decide(client, pending.approvalId, pending.tool, pending.input, opts);
    }
    if (finished) return { run: await client.getRun(sessionId), executionArn: follower.executionArn };
    await sleep(300);
  }
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
  try {
    const result = await client.decide(approvalId, decision, reason, process.env.USER ?? 'agentctl');
    say(`approval ${approvalId}: ${result.status}${opts.approve || opts.reject !== undefined ? ' (given by flag)' : ''}\n`);
  } catch (err) {
    // The run stopped waiting meanwhile (timed out, cancelled, rolled back): nothing to answer.
    if (!(err instanceof ApiError && err.status === 409)) throw err;
    say(`approval ${approvalId}: not delivered (${err.message})\n`);
  }
}

/**
 * What an event says about model routing: the step kind and the model that answered a
 * turn (and whether it was a fallback); the model and reason of a circuit change or a fallback.
 */
function routingDetail(type: string, record: Record<string, unknown>): string {
  const routing = record.routing as { kind?: string; servedBy?: { provider: string; modelId: string; index: number } } | undefined;
  if (type === 'ModelTurnCompleted' && routing?.servedBy) {
    const { provider, modelId, index } = routing.servedBy;
    return `  ${routing.kind ?? ''} ${provider}/${modelId}${index > 0 ? ` (fallback ${index})` : ''}`;
  }
  const detail = record.detail as { model?: string; servedBy?: string; primary?: string; reason?: string } | undefined;
  if (type === 'ModelFallback' && detail) return `  ${detail.primary ?? '?'} -> ${detail.servedBy ?? '?'}`;
  if (type.startsWith('Circuit') && detail) return `  ${detail.model ?? '?'}: ${detail.reason ?? ''}`;
  return '';
}

/** A run's status as readable lines. */
function describeRun(run: RunStatus): string[] {
  const lines = [
    `session     ${run.sessionId}`,
    `agent       ${run.agent}`,
    `status      ${run.status}`,
    `step        ${run.step} model turn(s) completed`,
    `execution   ${run.executionArn}`,
    `executions  ${run.executions}${run.parentExecutionArn ? ` (previous: ${run.parentExecutionArn})` : ''}`,
    `branch      ${run.branch}${run.branch > 0 ? ` (rolled back ${run.branch} time(s))` : ''}`,
    `created     ${run.createdAt}`,
    `updated     ${run.updatedAt}`,
  ];
  if (run.cancellation) lines.push(`cancelled   ${run.cancellation.at}${run.cancellation.by ? ` by ${run.cancellation.by}` : ''}: ${run.cancellation.reason}`);
  if (run.budgets && Object.keys(run.budgets).length > 0) lines.push(`budgets     ${JSON.stringify(run.budgets)}`);
  if (run.pause) {
    lines.push(`paused      ${run.pause.at}: ${run.pause.budget} used ${run.pause.used} of ${run.pause.limit}`);
    lines.push(`            resume: npm run agentctl -- raise-budget ${run.sessionId} --<budget> <new limit>; or: npm run agentctl -- stop ${run.sessionId} --reason <why>`);
  }
  if (run.stop) lines.push(`stopped     ${run.stop.at}${run.stop.by ? ` by ${run.stop.by}` : ''}: ${run.stop.reason}`);
  if (run.failure) lines.push(`failure     ${run.failure.error} in ${run.failure.failedState}: ${run.failure.cause}`);
  if (run.output !== undefined) lines.push(`output      ${JSON.stringify(run.output, null, 2).replace(/\n/g, '\n            ')}`);
  for (const a of run.pendingApprovals) {
    lines.push(`approval    ${a.approvalId}: ${a.tool} ${JSON.stringify(a.input)} (step ${a.step}, expires ${a.expiresAt})`);
  }
  return lines;
}

/** Parses a non-negative (or, with `min` 1, positive) integer option. */
const integer =
  (min: number) =>
  (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min) throw new InvalidArgumentError(`must be an integer of at least ${min}`);
    return n;
  };

/** Writes a fault row `{sessionId, point, mode, remaining}` into the stack's fault table. */
async function injectFault(outputs: StackOutputs, sessionId: string, point: string, mode: string, times: number): Promise<void> {
  if (!(FAULT_POINTS as readonly string[]).includes(point)) throw new Error(`unknown fault point "${point}"; one of: ${FAULT_POINTS.join(', ')}`);
  if (!(FAULT_MODES as readonly string[]).includes(mode)) throw new Error(`unknown fault mode "${mode}"; one of: ${FAULT_MODES.join(', ')}`);
  const table = outputs.FaultTableName;
  if (!table) {
    throw new Error(
      `stack ${STACK} has no fault table (no FaultTableName output): fault injection is off. ` +
        'Deploy a runtime with `faultInjection: true` (AgentRuntimeProps) whose stack outputs FaultTableName.',
    );
  }
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}));
  await doc.send(new PutCommand({ TableName: table, Item: { sessionId, point, mode, remaining: times } }));
  say(`fault planned: ${point} of session ${sessionId} fails by ${mode}, ${times} time(s) (table ${table})`);
}

async function withOutputs<T>(fn: (outputs: StackOutputs) => Promise<T>): Promise<T> {
  useLocalCloudEnv();
  const file = path.join(ROOT, '.local-cloud', `${STACK}-outputs.json`);
  if (!fs.existsSync(file)) throw new Error(`no deployed stack recorded in ${file}: run \`npm run example\` or \`npm run agentctl -- deploy\` first`);
  const outputs = (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, StackOutputs>)[STACK];
  if (!outputs) throw new Error(`${file} has no ${STACK} outputs`);
  return fn(outputs);
}

/** The agent module `policy put` validates against, unless `--module` names another. */
const DEFAULT_AGENT_MODULE = 'examples/ssh-brute-force/agent.ts';

/** The stack's policy table (`PolicyTableName` output) through the document client. */
function policyStore(outputs: StackOutputs): PolicyStore {
  const table = outputs.PolicyTableName;
  if (!table) throw new Error(`stack ${STACK} has no PolicyTableName output: redeploy it (npm run agentctl -- deploy)`);
  return new PolicyStore(DynamoDBDocumentClient.from(new DynamoDBClient({})), table);
}

/**
 * Writes `file` as `agent`'s policy override, after checking it as synth checks the
 * bundled file: Cedar's strict validation against the schema generated from the tools
 * of the definition `exportName` of `modulePath`, and every `Tool::"..."` one of them.
 * @throws Error listing every problem (nothing is written), or when the module's agent is another one.
 */
async function putPolicy(agent: string, file: string, modulePath: string, exportName: string): Promise<void> {
  const text = fs.readFileSync(file, 'utf8');
  const mod = (await import(path.resolve(ROOT, modulePath))) as Record<string, unknown>;
  const definition = mod[exportName] as AgentDefinition | undefined;
  if (!definition?.tools) throw new Error(`${modulePath} exports no agent definition named "${exportName}" (give --module and --export)`);
  if (definition.name !== agent) throw new Error(`${modulePath} (${exportName}) defines agent "${definition.name}", not "${agent}": give --module and --export`);
  const problems = policyProblems({ text, source: file }, policySchema(definition.tools), { tools: definition.tools.map((t) => t.name) });
  if (problems.length > 0) throw new Error(`${file} was not written; its problems:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  const record = await withOutputs((o) => policyStore(o).put(agent, text, REQUESTED_BY));
  say(`agent ${agent}: policy override version ${record.version} written by ${record.updatedBy} at ${record.updatedAt}; it applies from the next decision`);
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
  .description("a run's status: current execution, executions, branch, cancellation, failure or output, pending approvals")
  .option('--json', 'print the API answer as JSON')
  .action((id: string, opts: { json?: boolean }) =>
    withOutputs(async (o) => {
      const run = await api(o).getRun(id);
      if (opts.json) say(JSON.stringify(run, null, 2));
      else for (const line of describeRun(run)) say(line);
    }),
  );
program
  .command('follow <sessionId>')
  .description('follow a run until it ends, across its executions (continue-as-new, resume, rollback), answering approvals')
  .option('--approve', 'approve without asking')
  .option('--reject <reason>', 'reject without asking, with this reason')
  .action((id: string, opts: ExampleOptions) =>
    withOutputs(async (o) => {
      if (opts.approve && opts.reject !== undefined) throw new Error('give --approve or --reject, not both');
      const { run, executionArn } = await followSession(api(o), id, opts);
      say('');
      for (const line of describeRun(run)) say(line);
      if (run.status !== 'SUCCEEDED') process.exitCode = 1;
      say(`last execution followed: ${executionArn}`);
    }),
  );
program
  .command('resume <sessionId>')
  .description('resume a FAILED run from its last good checkpoint, in a new execution')
  .option('--reason <text>', 'why (logged)')
  .action((id: string, opts: { reason?: string }) =>
    withOutputs(async (o) => {
      const r = await api(o).resume(id, { reason: opts.reason, requestedBy: REQUESTED_BY });
      say(r.created ? `session ${r.sessionId}: resumed in execution ${r.execution}` : `session ${r.sessionId}: already resuming in execution ${r.execution} (repeated request)`);
      say(`execution ${r.executionArn}`);
      say(`follow it: npm run agentctl -- follow ${r.sessionId}`);
    }),
  );
program
  .command('cancel <sessionId>')
  .description('cancel a RUNNING run: CANCELLED (final), its executions stopped, its pending approvals expired')
  .requiredOption('--reason <text>', 'why (recorded on the session and as the executions\' stop cause)')
  .action((id: string, opts: { reason: string }) =>
    withOutputs(async (o) => {
      const r = await api(o).cancel(id, { reason: opts.reason, requestedBy: REQUESTED_BY });
      say(`session ${r.sessionId}: ${r.status}`);
      say(r.stoppedExecutions.length ? `stopped: ${r.stoppedExecutions.join(', ')}` : 'stopped: none (no execution was running)');
      if (r.expiredApprovals.length) say(`expired approvals: ${r.expiredApprovals.join(', ')}`);
    }),
  );
program
  .command('rollback <sessionId>')
  .description('roll a run back to the end of model turn N (0: before the first) and continue it from there in a new execution')
  .requiredOption('--to-step <n>', 'model turns to keep', integer(0))
  .option('--reason <text>', 'why (recorded in the rollback record)')
  .action((id: string, opts: { toStep: number; reason?: string }) =>
    withOutputs(async (o) => {
      const reason = opts.reason ?? `rolled back to step ${opts.toStep} with agentctl`;
      const r = await api(o).rollback(id, { toStep: opts.toStep, reason, requestedBy: REQUESTED_BY });
      say(`session ${r.sessionId}: rolled back to step ${opts.toStep} (branch ${r.branch}, ${r.abandoned} checkpoint(s) abandoned)`);
      say(`continues in execution ${r.execution}: ${r.executionArn}`);
      say(`follow it: npm run agentctl -- follow ${r.sessionId}`);
    }),
  );
program
  .command('raise-budget <sessionId>')
  .description('set a run\'s budgets (each option the new limit); a run paused on a budget resumes where it stopped')
  .option('--cost-usd <usd>', 'cost in USD', Number)
  .option('--input-tokens <n>', 'input tokens', integer(1))
  .option('--output-tokens <n>', 'output tokens', integer(1))
  .option('--steps <n>', 'model turns', integer(1))
  .option('--wall-clock-seconds <n>', 'seconds, not counting pauses', integer(1))
  .option('--reason <text>', 'why (logged)')
  .action((id: string, opts: { costUsd?: number; inputTokens?: number; outputTokens?: number; steps?: number; wallClockSeconds?: number; reason?: string }) =>
    withOutputs(async (o) => {
      const { reason, ...budgets } = opts;
      const r = await api(o).raiseBudget(id, { budgets, reason, requestedBy: REQUESTED_BY });
      say(`session ${r.sessionId}: budgets ${JSON.stringify(r.budgets)}${r.resumed ? ' (resumed)' : ''}`);
    }),
  );
program
  .command('stop <sessionId>')
  .description('stop a run paused on a budget: it ends STOPPED, its partial results kept')
  .requiredOption('--reason <text>', 'why (recorded on the session)')
  .action((id: string, opts: { reason: string }) =>
    withOutputs(async (o) => {
      const r = await api(o).stop(id, { reason: opts.reason, requestedBy: REQUESTED_BY });
      say(`session ${r.sessionId}: ${r.status} after ${r.step} model turn(s), ${r.completedToolCalls} completed tool call(s); paused on ${r.pause.budget} (${r.pause.used} of ${r.pause.limit})`);
    }),
  );
program
  .command('inject-fault <sessionId> <point> <mode>')
  .description(`plan a fault for a session (stacks with fault injection only); point: ${FAULT_POINTS.join(' | ')}; mode: ${FAULT_MODES.join(' | ')}`)
  .option('--times <n>', 'how many times it fires', integer(1), 1)
  .action((id: string, point: string, mode: string, opts: { times: number }) => withOutputs((o) => injectFault(o, id, point, mode, opts.times)));
program
  .command('events <sessionId>')
  .action((id: string) =>
    withOutputs(async (o) => {
      for (const e of await api(o).getEvents(id)) say(`${e.at}  ${e.type.padEnd(20)} ${e.checkpointKey}${routingDetail(e.type, e.record)}`);
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
const policy = program.command('policy').description("an agent's Cedar policy override in the policy table (read before every decision)");
policy
  .command('show <agent>')
  .description("print the agent's override, or say that the bundled policies apply")
  .action((agent: string) =>
    withOutputs(async (o) => {
      const record = await policyStore(o).current(agent);
      if (!record) say(`agent ${agent}: no override; the bundled policies apply (the agent's policies file, or permit-all when it declares none)`);
      else say(`agent ${agent}: override version ${record.version}, written by ${record.updatedBy} at ${record.updatedAt}\n\n${record.policies}`);
    }),
  );
policy
  .command('put <agent> <file>')
  .description("validate a Cedar file against the agent's tools, then write it as the agent's override")
  .option('--module <path>', 'the module declaring the agent, relative to the project root', DEFAULT_AGENT_MODULE)
  .option('--export <name>', "the module's export holding the agent definition", 'agent')
  .action((agent: string, file: string, opts: { module: string; export: string }) => putPolicy(agent, file, opts.module, opts.export));
policy
  .command('remove <agent>')
  .description("delete the agent's override: the bundled policies apply from the next decision")
  .action((agent: string) =>
    withOutputs(async (o) => {
      await policyStore(o).remove(agent);
      say(`agent ${agent}: override removed (if there was one); the bundled policies apply from the next decision`);
    }),
  );
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
