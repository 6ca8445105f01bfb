/**
 * `ssh-investigator`: investigates an Amazon GuardDuty
 * `UnauthorizedAccess:EC2/SSHBruteForce` finding against the instance's sshd log,
 * asks a human before blocking the attacking address, and answers with an
 * {@link IncidentReport}.
 *
 * Triggered by the finding's EventBridge event (sample:
 * `events/guardduty-ssh-brute-force.json`). The model is scripted: it replays
 * `conversation.json`, recorded on the bundled log (`data/OpenSSH_2k.log`);
 * `conversation.rejected.json` is the same run when the approver rejects the block.
 */
import { z } from 'zod';
import { ScriptedConversationSchema, type ScriptedConversation } from '../../lambdas/core/contracts/scripted';
import { defineAgent, type TriggerMeta } from '../../lambdas/core/define';
import approvedJson from './conversation.json';
import rejectedJson from './conversation.rejected.json';
import { PRICE_TABLE } from '../../lambdas/core/budget';
import { LOG_YEAR } from './log';
import policies from './policies.cedar';
import { incidentReportPipeline } from './rules';
import { tools } from './tools';

/** The GuardDuty finding type this agent handles. */
export const SSH_BRUTE_FORCE_FINDING_TYPE = 'UnauthorizedAccess:EC2/SSHBruteForce';

const isoTime = z.iso.datetime({ offset: true });

/**
 * The `detail` of a GuardDuty finding event of type
 * `UnauthorizedAccess:EC2/SSHBruteForce` (GuardDuty finding format, schemaVersion
 * 2.0): the fields the agent uses, validated; every object keeps its other fields.
 * Example (abridged): `{"schemaVersion":"2.0","accountId":"123456789012","region":"us-east-1","id":"6cc9...","type":"UnauthorizedAccess:EC2/SSHBruteForce","severity":2,"title":"183.62.140.253 is performing SSH brute force attacks against i-0a1b2c3d4e5f67890.","description":"...","createdAt":"2024-12-10T11:09:51.412Z","updatedAt":"2024-12-10T11:09:51.412Z","resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"i-0a1b2c3d4e5f67890"}},"service":{"action":{"actionType":"NETWORK_CONNECTION","networkConnectionAction":{"connectionDirection":"INBOUND","remoteIpDetails":{"ipAddressV4":"183.62.140.253"},"localPortDetails":{"port":22}}},"count":1,"eventFirstSeen":"2024-12-10T10:54:27.000Z","eventLastSeen":"2024-12-10T11:04:43.000Z"}}`
 */
export const SshBruteForceFindingSchema = z.looseObject({
  schemaVersion: z.string(),
  accountId: z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id'),
  region: z.string().min(1),
  id: z.string().min(1),
  type: z.literal(SSH_BRUTE_FORCE_FINDING_TYPE),
  /** GuardDuty severity, from 1.0 (low) upwards; 0 to 10 accepted. This finding type is low (2) when INBOUND. */
  severity: z.number().min(0).max(10),
  title: z.string(),
  description: z.string(),
  createdAt: isoTime,
  updatedAt: isoTime,
  resource: z.looseObject({
    resourceType: z.string(),
    instanceDetails: z.looseObject({ instanceId: z.string().min(1) }),
  }),
  service: z.looseObject({
    action: z.looseObject({
      actionType: z.literal('NETWORK_CONNECTION'),
      networkConnectionAction: z.looseObject({
        /** INBOUND: the instance is attacked; OUTBOUND: the instance attacks the remote address. */
        connectionDirection: z.enum(['INBOUND', 'OUTBOUND', 'UNKNOWN']),
        remoteIpDetails: z.looseObject({ ipAddressV4: z.ipv4() }),
        localPortDetails: z.looseObject({ port: z.number().int().min(0).max(65_535) }),
      }),
    }),
    /** How many times GuardDuty saw the activity. */
    count: z.number().int().nonnegative(),
    eventFirstSeen: isoTime,
    eventLastSeen: isoTime,
  }),
});
export type SshBruteForceFinding = z.infer<typeof SshBruteForceFindingSchema>;

/**
 * The agent's final answer.
 * Example (abridged): `{"summary":"... 183.62.140.253 made 286 failed password attempts ...","timeWindow":{"from":"2024-12-10T06:55:48Z","to":"2024-12-10T11:04:45Z"},"offendingAddresses":[{"address":"183.62.140.253","attempts":286,"firstSeen":"2024-12-10T10:54:29Z","lastSeen":"2024-12-10T11:04:43Z"}],"citedLineIds":[1024,1997],"recommendedActions":["Disable SSH password authentication"],"blockedAddresses":["183.62.140.253"]}`
 */
export const IncidentReportSchema = z.object({
  summary: z.string().min(1).describe('What happened and what was done, with the key numbers'),
  timeWindow: z
    .object({
      from: isoTime.describe('Start of the activity investigated, ISO 8601'),
      to: isoTime.describe('End of the activity investigated, ISO 8601'),
    })
    .describe('The time span the report covers, as the tools reported it'),
  offendingAddresses: z
    .array(
      z.object({
        address: z.ipv4(),
        attempts: z.number().int().nonnegative().describe('Failed attempts, as count_failed_attempts reported them'),
        firstSeen: isoTime,
        lastSeen: isoTime,
      }),
    )
    .describe('Addresses that attacked, most attempts first'),
  citedLineIds: z.array(z.number().int().positive()).min(1).describe('Log line ids of the evidence'),
  recommendedActions: z.array(z.string().min(1)).min(1),
  blockedAddresses: z.array(z.ipv4()).describe('Addresses block_address actually blocked in this run (empty if none)'),
});
export type IncidentReport = z.infer<typeof IncidentReportSchema>;

/** The recorded conversation the agent replays (approval granted). Parsed at load: a bad file fails the import. */
export const approvedConversation: ScriptedConversation = ScriptedConversationSchema.parse(approvedJson);

/** The same run when the approver rejects the block (or the approval times out). */
export const rejectedConversation: ScriptedConversation = ScriptedConversationSchema.parse(rejectedJson);

/** The agent's instructions. */
export const SYSTEM_PROMPT = `You are a security analyst investigating an Amazon GuardDuty finding of type ${SSH_BRUTE_FORCE_FINDING_TYPE}: a remote address guessing SSH passwords on an EC2 instance.

You have the instance's sshd log (host LabSZ, syslog format; timestamps are UTC and the year ${LOG_YEAR} is assumed because the log records none) and these tools:
- count_failed_attempts: failed SSH logins per source address, optionally in a time range.
- search_log_lines: lines matching a case-insensitive regular expression, optionally in a time range.
- show_log_lines: lines by line id.
- block_address: blocks an address; a human must approve every call.

How to work:
1. Check the finding against the log: how many failed attempts came from the address the finding names, when they started and stopped, which accounts were tried, and whether any login from it succeeded. Put the address in context with the other sources in the log.
2. Base every statement on tool results. Cite the log lines you rely on by line id, and copy counts and timestamps exactly as the tools return them; never estimate them.
3. Block only the address the finding names, and only if the log confirms repeated failed logins from it. Never block any other address; recommend a review for the others instead. Give the evidence (counts, time span, line ids) in the block's reason.
4. If the block is rejected or times out, do not retry it: report that it was declined and needs review, and leave blockedAddresses empty.
5. If the log does not confirm the finding, say so and block nothing.

Your final answer is one JSON object and nothing else (no prose, no code fence) with exactly these fields:
{"summary": string, "timeWindow": {"from": ISO 8601, "to": ISO 8601}, "offendingAddresses": [{"address": IPv4, "attempts": integer, "firstSeen": ISO 8601, "lastSeen": ISO 8601}], "citedLineIds": [integer, at least one], "recommendedActions": [string, at least one], "blockedAddresses": [IPv4 addresses actually blocked]}`;

/**
 * The first user message: the finding in a few lines.
 * Example: `GuardDuty finding 6cc9... (UnauthorizedAccess:EC2/SSHBruteForce, severity 2) in account 123456789012, us-east-1, ...`
 */
export function findingPrompt(finding: SshBruteForceFinding, trigger: TriggerMeta): string {
  const action = finding.service.action.networkConnectionAction;
  const address = action.remoteIpDetails.ipAddressV4;
  const instance = finding.resource.instanceDetails.instanceId;
  const direction =
    action.connectionDirection === 'INBOUND'
      ? `${address} is connecting to port ${action.localPortDetails.port} of ${instance} (INBOUND: the instance is the target)`
      : `${instance} and ${address} on local port ${action.localPortDetails.port}, direction ${action.connectionDirection} (if OUTBOUND, the instance itself may be attacking: say so in the report)`;
  const received = trigger.time ? `, received ${trigger.time} via ${trigger.source}` : ` via ${trigger.source}`;
  return [
    `GuardDuty finding ${finding.id} (${finding.type}, severity ${finding.severity}) in account ${finding.accountId}, ${finding.region}${received}.`,
    `Title: ${finding.title}`,
    `Remote address: ${address}. ${direction}.`,
    `GuardDuty saw the activity ${finding.service.count} time(s), first ${finding.service.eventFirstSeen}, last ${finding.service.eventLastSeen}.`,
    `Investigate it in the instance's sshd log, block ${address} if the evidence confirms the attack, and answer with the JSON report.`,
  ].join('\n');
}

/** The agent. */
export const agent = defineAgent({
  name: 'ssh-investigator',
  description: 'Investigates GuardDuty SSH brute-force findings in the sshd log and blocks the attacker after human approval.',
  systemPrompt: SYSTEM_PROMPT,
  // The recorded conversation came from a Claude Sonnet 4.5-class model; it is priced as one.
  model: { provider: 'scripted', script: approvedConversation, pricing: PRICE_TABLE['claude-sonnet-4-5'] },
  input: SshBruteForceFindingSchema,
  prompt: findingPrompt,
  output: IncidentReportSchema,
  tools,
  maxSteps: 10,
  // A run costs about 0.07 USD (priced as Claude Sonnet 4.5); these leave room for a longer one.
  budgets: { costUsd: 0.5, inputTokens: 150_000, outputTokens: 10_000, steps: 8, wallClockSeconds: 3600 },
  policies: { text: policies, source: 'examples/ssh-brute-force/policies.cedar' },
  outputPipeline: incidentReportPipeline,
  triggers: [
    {
      type: 'eventbridge',
      eventPattern: {
        // GuardDuty publishes as `aws.guardduty`. AWS reserves `aws.*` sources for its own
        // services (PutEvents refuses them), so replayed or forwarded findings, such as the
        // ones `npm run example` publishes, come as `agent-runtime.replay` with the same shape.
        source: ['aws.guardduty', 'agent-runtime.replay'],
        detailType: ['GuardDuty Finding'],
        detail: { type: [SSH_BRUTE_FORCE_FINDING_TYPE] },
      },
      // Findings are investigated on behalf of the account they come from, as its automated responder.
      principal: (event) => ({ user: `guardduty:${event.account}`, tenant: event.account, roles: ['security-responder'] }),
    },
  ],
});
