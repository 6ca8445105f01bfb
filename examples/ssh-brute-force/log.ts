/**
 * Pure analysis of an sshd log in BSD syslog format (RFC 3164), as written by
 * OpenSSH through syslog. Example line (line 6 of `data/OpenSSH_2k.log`):
 *
 * `Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2`
 *
 * No I/O: the tools parse the bundled log once and query it with these functions.
 */

/**
 * The year of every timestamp. A BSD syslog timestamp (`Dec 10 06:55:46`) has
 * no year, and Loghub does not record the year the OpenSSH sample was collected
 * in; 2024 is an assumption, fixed so that timestamps are deterministic and
 * sortable and so that the sample GuardDuty finding can match them. The sample
 * lies within one day (10 Dec), so no year rollover is handled.
 *
 * Time zone: the timestamps are the local time of host `LabSZ`, which the
 * dataset does not record either; they are read as UTC.
 */
export const LOG_YEAR = 2024;

/** Line ids a failed-attempt source lists as samples: its first five. */
export const SAMPLE_LINE_IDS = 5;

/**
 * What a line reports, from the sshd message templates of Loghub's
 * `OpenSSH_2k.log_templates.csv` (E1..E27):
 * - `accepted`: `Accepted password for U from A port P ssh2` (E1)
 * - `failed_password`: `Failed password for [invalid user] U from A port P ssh2` (E9, E10; E14 when repeated)
 * - `failed_none`: `Failed none for invalid user U from A port P ssh2` (E8): the client probing the `none` method
 * - `invalid_user`: `Invalid user U from A` (E13), `input_userauth_request: invalid user U [preauth]` (E12)
 * - `auth_failure`: PAM's reports (E15..E21): `pam_unix(sshd:auth): authentication failure; ... rhost=H`,
 *   `check pass; user unknown`, `PAM n more authentication failure(s)`, `PAM service(sshd) ignoring max retries`
 * - `break_in_attempt`: `reverse mapping checking getaddrinfo for H [A] failed - POSSIBLE BREAK-IN ATTEMPT!` (E27)
 * - `disconnect`: `Connection closed by A [preauth]`, `[error: ]Received disconnect from A: ...`,
 *   `Disconnecting: Too many authentication failures for U [preauth]`, `fatal: Write failed: ...` (E2, E4..E7, E11, E24..E26)
 * - `no_identification`: `Did not receive identification string from A` (E3): a connection that never spoke SSH
 * - `session`: `pam_unix(sshd:session): session opened|closed for user U` (E22, E23)
 * - `other`: anything else
 */
export const LOG_EVENT_KINDS = [
  'accepted',
  'failed_password',
  'failed_none',
  'invalid_user',
  'auth_failure',
  'break_in_attempt',
  'disconnect',
  'no_identification',
  'session',
  'other',
] as const;

/** One of {@link LOG_EVENT_KINDS}. */
export type LogEventKind = (typeof LOG_EVENT_KINDS)[number];

/** One parsed log line. */
export interface LogLine {
  /** 1-based line number in the log. */
  readonly lineId: number;
  /** The line exactly as written (without its line break). */
  readonly text: string;
  /** ISO 8601, UTC, second precision, year {@link LOG_YEAR}: `2024-12-10T06:55:46Z`. */
  readonly timestamp: string;
  /** {@link timestamp} as milliseconds since the Unix epoch. */
  readonly epochMs: number;
  /** Syslog host name: `LabSZ`. */
  readonly host: string;
  /** Syslog tag without the pid: `sshd`. */
  readonly process: string;
  /** Process id from `sshd[24200]`; undefined when the tag has none. */
  readonly pid: number | undefined;
  /** The message after `tag[pid]: `, trailing whitespace removed. */
  readonly message: string;
  /**
   * The remote IPv4 address the message names: after `from ` or `by `, inside
   * `[...]`, or as `rhost=`. Undefined when there is none, including when `rhost=` is a
   * host name (`rhost=5.36.59.76.dynamic-dsl-ip.omantel.net.om` is a name, not an address).
   */
  readonly sourceAddress: string | undefined;
  /** What the line reports; for a `message repeated` line, what the repeated message reports. */
  readonly kind: LogEventKind;
  /**
   * How many times the message occurred: 1, or N for syslog's
   * `message repeated N times: [ message]`, which stands for N more copies of
   * the message logged just before it.
   */
  readonly occurrences: number;
}

/** An inclusive time range, epoch milliseconds; an absent end is open. */
export interface TimeRange {
  readonly fromMs?: number | undefined;
  readonly toMs?: number | undefined;
}

/** One address's failed attempts, as {@link summariseFailedAttempts} reports them. */
export interface FailedAttemptSource {
  /** IPv4 address. */
  readonly address: string;
  /** Failed attempts (see {@link failedAttemptsOf}). */
  readonly attempts: number;
  /** Timestamp of its first failed attempt, ISO 8601 UTC. */
  readonly firstSeen: string;
  /** Timestamp of its last failed attempt, ISO 8601 UTC. */
  readonly lastSeen: string;
  /** Line ids of its first {@link SAMPLE_LINE_IDS} failed-attempt lines, ascending. */
  readonly sampleLineIds: number[];
}

/** Failed attempts in a time range, by source address. */
export interface FailedAttemptSummary {
  /** First and last failed attempt in the range (any source), ISO 8601 UTC; null when there is none. */
  readonly window: { readonly from: string; readonly to: string } | null;
  /** Failed attempts in the range, from every source (before the `minAttempts` filter). */
  readonly totalFailedAttempts: number;
  /** Sources with at least `minAttempts` attempts: attempts descending, then first attempt ascending. */
  readonly sources: FailedAttemptSource[];
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `Mmm dd hh:mm:ss host tag[pid]: message`; syslog pads a one-digit day with a space (`Dec  1`). */
const SYSLOG_LINE = /^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\S+) ([^\s[:]+)(?:\[(\d+)\])?: ?(.*)$/;

/** `message repeated N times: [ message]` (rsyslog's repeated-message reduction). */
const REPEATED = /^message repeated (\d+) times: \[ ?(.*)\]$/;

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/**
 * An IPv4 address in one of the places sshd puts the remote address: `from A`,
 * `by A`, `[A]`, `rhost=A`; it must end there (space, `:`, `]` or the end), so the
 * leading digits of a host name such as `5.36.59.76.dynamic-dsl-ip.omantel.net.om` do not count.
 */
const SOURCE_ADDRESS = new RegExp(`(?:\\b(?:from|by) |\\[|\\brhost=)(${OCTET}(?:\\.${OCTET}){3})(?=[\\s:\\]]|$)`);

/** First rule that matches the message wins. */
const KIND_RULES: ReadonlyArray<readonly [RegExp, LogEventKind]> = [
  [/^Accepted \S+ for .* from /, 'accepted'],
  [/^Failed password for .* from /, 'failed_password'],
  [/^Failed none for .* from /, 'failed_none'],
  [/^(?:Invalid user .* from |input_userauth_request: invalid user )/, 'invalid_user'],
  [
    /^(?:pam_unix\(sshd:auth\): (?:authentication failure;|check pass;)|PAM \d+ more authentication failures?;|PAM service\(sshd\) ignoring max retries;)/,
    'auth_failure',
  ],
  [/^reverse mapping checking getaddrinfo for .* failed - POSSIBLE BREAK-IN ATTEMPT!$/, 'break_in_attempt'],
  [/^(?:Connection closed by |(?:error: )?Received disconnect from |Disconnecting: |fatal: Write failed: )/, 'disconnect'],
  [/^Did not receive identification string from /, 'no_identification'],
  [/^pam_unix\(sshd:session\): session (?:opened|closed) for user /, 'session'],
];

/** `2024-12-10T06:55:46Z`: ISO 8601 UTC without milliseconds (the log has second precision). */
function toIsoSeconds(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function classify(message: string): LogEventKind {
  for (const [pattern, kind] of KIND_RULES) if (pattern.test(message)) return kind;
  return 'other';
}

/**
 * Parses one line.
 * @param text the line without its line break
 * @param lineId its 1-based line number
 * @returns the parsed line, or undefined when it is not `Mmm dd hh:mm:ss host tag[pid]: message`
 *   or names an impossible date or time.
 */
export function parseLine(text: string, lineId: number): LogLine | undefined {
  const m = SYSLOG_LINE.exec(text);
  if (!m) return undefined;
  const [, mon = '', day = '', hh = '', mm = '', ss = '', host = '', process = '', pid, rest = ''] = m;
  const month = MONTHS.indexOf(mon);
  const epochMs = Date.UTC(LOG_YEAR, month, Number(day), Number(hh), Number(mm), Number(ss));
  const date = new Date(epochMs);
  const valid =
    month >= 0 &&
    date.getUTCMonth() === month &&
    date.getUTCDate() === Number(day) &&
    date.getUTCHours() === Number(hh) &&
    date.getUTCMinutes() === Number(mm) &&
    date.getUTCSeconds() === Number(ss);
  if (!valid) return undefined;

  const message = rest.trimEnd();
  const repeated = REPEATED.exec(message);
  const reported = repeated?.[2] ?? message;
  return {
    lineId,
    text,
    timestamp: toIsoSeconds(epochMs),
    epochMs,
    host,
    process,
    pid: pid === undefined ? undefined : Number(pid),
    message,
    sourceAddress: SOURCE_ADDRESS.exec(message)?.[1],
    kind: classify(reported),
    occurrences: repeated ? Number(repeated[1]) : 1,
  };
}

/**
 * Parses a whole log: one {@link LogLine} per line, line ids from 1. Accepts
 * `\n` or `\r\n` line breaks; a final empty line (a trailing line break) is not a line.
 * @throws Error naming the first line that is not a syslog line: the log is a
 *   bundled asset, so a bad line means a bad bundle.
 */
export function parseLog(text: string): LogLine[] {
  const raw = text.split(/\r?\n/);
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
  return raw.map((lineText, index) => {
    const line = parseLine(lineText, index + 1);
    if (!line) throw new Error(`parseLog: line ${index + 1} is not a syslog line: ${JSON.stringify(lineText.slice(0, 120))}`);
    return line;
  });
}

/**
 * How many failed attempts a line records. A failed attempt is one password
 * that sshd rejected, so that each guess counts exactly once:
 * - `Failed password for [invalid user] U from A port P ssh2` counts 1;
 * - `message repeated N times: [ Failed password for ... ]` counts N (syslog folded N more identical lines into it);
 * - every other line counts 0, including the lines that accompany the same guess
 *   (`Invalid user U from A`, `input_userauth_request: invalid user U`,
 *   `pam_unix(sshd:auth): authentication failure`, `check pass; user unknown`,
 *   `PAM n more authentication failures`, `Disconnecting: Too many authentication failures`),
 *   and `Failed none`, the client's probe of the `none` method, which sshd
 *   itself does not count towards MaxAuthTries.
 * A line without a source address counts 0 (none in this log).
 */
export function failedAttemptsOf(line: LogLine): number {
  return line.kind === 'failed_password' && line.sourceAddress !== undefined ? line.occurrences : 0;
}

/** Whether the line's timestamp lies in the range (both ends inclusive). */
export function inRange(line: LogLine, range: TimeRange): boolean {
  return (range.fromMs === undefined || line.epochMs >= range.fromMs) && (range.toMs === undefined || line.epochMs <= range.toMs);
}

/**
 * Lines whose text matches `pattern`, in log order.
 * @param pattern tested against each line's whole text (timestamp and tag included); must not have the `g` or `y` flag
 * @param limit how many matching lines to return (the first ones)
 * @returns `total` matching lines and the first `limit` of them
 */
export function searchLines(
  lines: readonly LogLine[],
  pattern: RegExp,
  range: TimeRange,
  limit: number,
): { total: number; lines: LogLine[] } {
  const matches = lines.filter((line) => inRange(line, range) && pattern.test(line.text));
  return { total: matches.length, lines: matches.slice(0, limit) };
}

/**
 * Counts the failed attempts (see {@link failedAttemptsOf}) in a time range by source address.
 * @param minAttempts a source is listed when it has at least this many attempts in the range
 */
export function summariseFailedAttempts(
  lines: readonly LogLine[],
  range: TimeRange,
  minAttempts: number,
): FailedAttemptSummary {
  interface Tally {
    attempts: number;
    first: LogLine;
    last: LogLine;
    sampleLineIds: number[];
  }
  const bySource = new Map<string, Tally>();
  let total = 0;
  let first: LogLine | undefined;
  let last: LogLine | undefined;
  for (const line of lines) {
    const attempts = failedAttemptsOf(line);
    if (attempts === 0 || line.sourceAddress === undefined || !inRange(line, range)) continue;
    total += attempts;
    first ??= line;
    last = line;
    const tally = bySource.get(line.sourceAddress);
    if (tally) {
      tally.attempts += attempts;
      tally.last = line;
      if (tally.sampleLineIds.length < SAMPLE_LINE_IDS) tally.sampleLineIds.push(line.lineId);
    } else {
      bySource.set(line.sourceAddress, { attempts, first: line, last: line, sampleLineIds: [line.lineId] });
    }
  }
  const sources = [...bySource.entries()]
    .filter(([, t]) => t.attempts >= minAttempts)
    .sort(([, a], [, b]) => b.attempts - a.attempts || a.first.lineId - b.first.lineId)
    .map(([address, t]) => ({
      address,
      attempts: t.attempts,
      firstSeen: t.first.timestamp,
      lastSeen: t.last.timestamp,
      sampleLineIds: t.sampleLineIds,
    }));
  return {
    window: first && last ? { from: first.timestamp, to: last.timestamp } : null,
    totalFailedAttempts: total,
    sources,
  };
}
