/**
 * The `ssh-investigator`'s output pipeline: semantic rules that hold its
 * {@link IncidentReport} to the session's tool results (cited lines were returned
 * by a tool, counts and times are the ones count_failed_attempts reported, blocks
 * are the ones block_address made), a confidence score, and the gate.
 */
import type { z } from 'zod';
import type { ConfidenceRule, OutputContext, OutputPipeline, SemanticRule } from '../../lambdas/core/output';
import type { IncidentReport } from './agent';
import {
  BlockAddressOutputSchema,
  CountFailedAttemptsOutputSchema,
  SearchLogLinesOutputSchema,
  ShowLogLinesOutputSchema,
} from './tools';

/** One successful call of a tool, its result parsed by the tool's output schema. */
interface Call<T> {
  readonly callId: string;
  readonly step: number;
  readonly output: T;
}

/** The session's successful calls of `tool`, in step order; results its output schema rejects are left out. */
function callsOf<S extends z.ZodType>(context: OutputContext, tool: string, schema: S): Call<z.infer<S>>[] {
  return context.toolResults.flatMap((r) => {
    if (r.tool !== tool) return [];
    const parsed = schema.safeParse(r.result);
    return parsed.success ? [{ callId: r.callId, step: r.step, output: parsed.data as z.infer<S> }] : [];
  });
}

/** Line ids whose text search_log_lines or show_log_lines returned. */
function linesRead(context: OutputContext): Set<number> {
  const ids = new Set<number>();
  for (const call of callsOf(context, 'search_log_lines', SearchLogLinesOutputSchema)) for (const l of call.output.lines) ids.add(l.lineId);
  for (const call of callsOf(context, 'show_log_lines', ShowLogLinesOutputSchema)) for (const l of call.output.lines) ids.add(l.lineId);
  return ids;
}

/** Line ids any tool returned: the lines read, and count_failed_attempts' sample line ids. */
function linesReturned(context: OutputContext): Set<number> {
  const ids = linesRead(context);
  for (const call of callsOf(context, 'count_failed_attempts', CountFailedAttemptsOutputSchema)) {
    for (const source of call.output.sources) for (const id of source.sampleLineIds) ids.add(id);
  }
  return ids;
}

const sameInstant = (a: string, b: string): boolean => Date.parse(a) === Date.parse(b);

const list = (ids: readonly number[]): string => `${ids.length === 1 ? 'line' : 'lines'} ${ids.join(', ')}`;

/**
 * `cited-lines-exist`: every `citedLineIds` entry is a line id a tool returned in
 * this session (search_log_lines and show_log_lines `lines[].lineId`,
 * count_failed_attempts `sources[].sampleLineIds`).
 * Problem: `lines 4242, 4243 were not returned by any tool in this session; …`
 */
export const citedLinesExist: SemanticRule<IncidentReport> = {
  name: 'cited-lines-exist',
  description: 'Every cited line id was returned by search_log_lines, show_log_lines or count_failed_attempts in this session.',
  check: (report, context) => {
    const returned = linesReturned(context);
    const missing = [...new Set(report.citedLineIds)].filter((id) => !returned.has(id));
    if (missing.length === 0) return [];
    return [
      `${list(missing)} ${missing.length === 1 ? 'was' : 'were'} not returned by any tool in this session; cite only line ids that search_log_lines, show_log_lines or count_failed_attempts returned`,
    ];
  },
};

/**
 * `counts-match-tools`: each offending address's `attempts`, `firstSeen` and
 * `lastSeen` are those of one count_failed_attempts result for that address
 * (any call of the session: a call may count a narrower time range). Times compare
 * as instants.
 * Problems: `183.62.140.253: attempts is 300 but count_failed_attempts reported 286 (call toolu_01); …`
 * or `10.0.0.9: count_failed_attempts reported no failed attempts from it; …`
 */
export const countsMatchTools: SemanticRule<IncidentReport> = {
  name: 'counts-match-tools',
  description: 'Each offending address has the attempts, firstSeen and lastSeen that count_failed_attempts reported for it.',
  check: (report, context) => {
    const counts = callsOf(context, 'count_failed_attempts', CountFailedAttemptsOutputSchema);
    const problems: string[] = [];
    for (const offender of report.offendingAddresses) {
      const reported = counts.flatMap((call) => call.output.sources.filter((s) => s.address === offender.address).map((source) => ({ call, source })));
      if (reported.length === 0) {
        problems.push(`${offender.address}: count_failed_attempts reported no failed attempts from it; list only addresses it reported, with its numbers`);
        continue;
      }
      const mismatches = reported.map(({ call, source }) => {
        const wrong: string[] = [];
        if (offender.attempts !== source.attempts) wrong.push(`attempts is ${offender.attempts} but count_failed_attempts reported ${source.attempts}`);
        if (!sameInstant(offender.firstSeen, source.firstSeen)) wrong.push(`firstSeen is ${offender.firstSeen} but count_failed_attempts reported ${source.firstSeen}`);
        if (!sameInstant(offender.lastSeen, source.lastSeen)) wrong.push(`lastSeen is ${offender.lastSeen} but count_failed_attempts reported ${source.lastSeen}`);
        return { callId: call.callId, wrong };
      });
      if (mismatches.some((m) => m.wrong.length === 0)) continue;
      // The closest report (fewest differences; the latest on a tie) explains the problem best.
      const closest = mismatches.reduce((best, m) => (m.wrong.length <= best.wrong.length ? m : best));
      problems.push(`${offender.address}: ${closest.wrong.join('; ')} (call ${closest.callId}); copy the numbers exactly`);
    }
    return problems;
  },
};

/**
 * `window-ordered`: `timeWindow.from` is not after `timeWindow.to`.
 * Problem: `timeWindow.from 2024-12-10T11:04:45Z is after timeWindow.to 2024-12-10T06:55:48Z`
 */
export const windowOrdered: SemanticRule<IncidentReport> = {
  name: 'window-ordered',
  description: 'timeWindow.from is at or before timeWindow.to.',
  check: ({ timeWindow }) =>
    Date.parse(timeWindow.from) > Date.parse(timeWindow.to) ? [`timeWindow.from ${timeWindow.from} is after timeWindow.to ${timeWindow.to}`] : [],
};

/**
 * `window-not-in-future`: neither end of `timeWindow` is after now (the activity
 * investigated has happened).
 * Problem: `timeWindow.to 2099-01-01T00:00:00Z is in the future (now is …); report the times the tools returned`
 */
export const windowNotInFuture: SemanticRule<IncidentReport> = {
  name: 'window-not-in-future',
  description: 'The time window has already happened: neither end is after now.',
  check: ({ timeWindow }, context) => {
    const now = new Date(context.now).toISOString();
    return (['from', 'to'] as const)
      .filter((end) => Date.parse(timeWindow[end]) > context.now)
      .map((end) => `timeWindow.${end} ${timeWindow[end]} is in the future (now is ${now}); report the times the tools returned`);
  },
};

/**
 * `addresses-within-window`: each offending address's `firstSeen` is not after its
 * `lastSeen`, and both lie within `timeWindow`.
 * Problem: `183.62.140.253: lastSeen 2024-12-10T12:00:00Z is outside timeWindow (… to …)`
 */
export const addressesWithinWindow: SemanticRule<IncidentReport> = {
  name: 'addresses-within-window',
  description: "Each offending address's firstSeen is at or before its lastSeen, and both lie within timeWindow.",
  check: ({ timeWindow, offendingAddresses }) => {
    const from = Date.parse(timeWindow.from);
    const to = Date.parse(timeWindow.to);
    const problems: string[] = [];
    for (const a of offendingAddresses) {
      const first = Date.parse(a.firstSeen);
      const last = Date.parse(a.lastSeen);
      if (first > last) problems.push(`${a.address}: firstSeen ${a.firstSeen} is after lastSeen ${a.lastSeen}`);
      for (const [field, value, ms] of [['firstSeen', a.firstSeen, first], ['lastSeen', a.lastSeen, last]] as const) {
        if (ms < from || ms > to) problems.push(`${a.address}: ${field} ${value} is outside timeWindow (${timeWindow.from} to ${timeWindow.to})`);
      }
    }
    return problems;
  },
};

/**
 * `blocked-addresses-confirmed`: `blockedAddresses` lists exactly what block_address
 * did: every address in it has a successful block_address call of this session
 * (a rejected or timed-out call is not one), and every address a call newly
 * blocked (`createdByThisCall`) is listed.
 * Problems: `183.62.140.253 is listed as blocked but no block_address call succeeded for it in this session; …`
 * or `183.62.140.253 was blocked by block_address (call toolu_06) but is missing from blockedAddresses`
 */
export const blockedAddressesConfirmed: SemanticRule<IncidentReport> = {
  name: 'blocked-addresses-confirmed',
  description: 'blockedAddresses lists the addresses block_address blocked in this session, and only them.',
  check: (report, context) => {
    const blocks = callsOf(context, 'block_address', BlockAddressOutputSchema);
    const blocked = new Set(blocks.map((b) => b.output.address));
    const listed = new Set(report.blockedAddresses);
    const problems = [...listed]
      .filter((address) => !blocked.has(address))
      .map((address) => `${address} is listed as blocked but no block_address call succeeded for it in this session; list only addresses block_address blocked`);
    const unlisted = new Map<string, string>();
    for (const b of blocks) if (b.output.createdByThisCall && !listed.has(b.output.address)) unlisted.set(b.output.address, b.callId);
    for (const [address, callId] of unlisted) problems.push(`${address} was blocked by block_address (call ${callId}) but is missing from blockedAddresses`);
    return problems;
  },
};

/** The report's semantic rules, in the order they run. */
export const incidentReportRules: SemanticRule<IncidentReport>[] = [
  citedLinesExist,
  countsMatchTools,
  windowOrdered,
  windowNotInFuture,
  addressesWithinWindow,
  blockedAddressesConfirmed,
];

/**
 * `cited-lines-read`: the share of cited lines whose text the model read
 * (returned by search_log_lines or show_log_lines), rather than only saw as an id
 * (count_failed_attempts' sample line ids). 1 when every cited line was read.
 * Example: `{"score":0.667,"reason":"lines 1030, 1033 were cited but never read (search_log_lines or show_log_lines)"}`
 */
export const citedLinesRead: ConfidenceRule<IncidentReport> = {
  name: 'cited-lines-read',
  score: (report, context) => {
    const cited = [...new Set(report.citedLineIds)];
    if (cited.length === 0) return { score: 0, reason: 'no line cited' };
    const read = linesRead(context);
    const unread = cited.filter((id) => !read.has(id));
    if (unread.length === 0) return { score: 1 };
    return {
      score: (cited.length - unread.length) / cited.length,
      reason: `${list(unread)} ${unread.length === 1 ? 'was' : 'were'} cited but never read (search_log_lines or show_log_lines)`,
    };
  },
};

/** Confidence below which a report goes to a human. */
export const INCIDENT_REPORT_CONFIDENCE_THRESHOLD = 0.8;

/**
 * The report's pipeline: {@link incidentReportRules}; a report that still breaks
 * them after the repairs goes to a human rather than failing the run (it carries
 * the evidence gathered so far); confidence {@link citedLinesRead}; below
 * {@link INCIDENT_REPORT_CONFIDENCE_THRESHOLD} (more than one cited line in five
 * never read) the report goes to review.
 */
export const incidentReportPipeline: OutputPipeline<IncidentReport> = {
  rules: incidentReportRules,
  onRuleFailure: 'review',
  confidence: { rules: [citedLinesRead] },
  gate: { threshold: INCIDENT_REPORT_CONFIDENCE_THRESHOLD, below: 'review' },
};
