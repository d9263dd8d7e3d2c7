/**
 * PA206 event_channel_consistency
 *
 * What it does: matches the channel names events are published on (`pg_notify('x', …)` and
 * `NOTIFY x` in migrations or code, `.publish("x")`) against the names they are listened on
 * (`LISTEN x`, `add_listener("x", …)`, `.subscribe("x")`). A name with no exact partner that is
 * a near miss of one on the other side (edit distance ≤ 2, or one inside the other) is a
 * mismatch; a name with no partner at all is an orphan.
 * Why is this bad? Channels are matched by exact name and nothing checks them: a listener on a
 * misspelt channel waits forever without an error.
 *
 * Works on the project context only. Names built at run time (`dynamic`) never count as a
 * mismatch; they make orphans on the other side undecidable, so none is reported then. Orphans
 * are reported only when the project has both publishers and subscribers (otherwise the other
 * side lives in another service). Test code is left out.
 */
import { isTestPath } from '../../../semantic/model.js';
import type { Severity } from '../../../types.js';
import type { RepoRule, RepoRuleContext } from '../../types.js';
import type { ProjectContext } from '../../../discovery/context.js';

interface Site {
  channel: string;
  /** PostgreSQL NOTIFY/LISTEN, or a message broker's publish/subscribe. */
  transport: 'postgres' | 'broker';
  /** In application code, not a migration or a schema file. */
  inCode: boolean;
  file: string;
  line: number;
  what: string;
}


export const eventChannelConsistency: RepoRule = {
  meta: {
    code: 'PA206',
    check: 'event_channel_consistency',
    family: 'transaction',
    severity: 'critical',
    effort: 'S',
    summary: 'Publisher and subscriber channel names that do not match',
    what: 'Collects every channel events are published on (`pg_notify(\'x\', …)` / `NOTIFY x` in trigger functions, migrations and code, `.publish("x")`) and every channel they are listened on (`LISTEN x`, `add_listener("x", …)`, `.subscribe("x")`). A name with no exact partner on the other side that is within edit distance 2 of one, or contains it, is a mismatch (critical). A published name nobody listens on is an orphan publisher (high); a listened name nobody publishes is an orphan subscriber (medium). Channels built at run time are never matched by guess.',
    why: 'PostgreSQL and message brokers match channels by exact name and report nothing when no one is listening: a listener on `job-progress` while the trigger notifies `job_progress` simply never fires. The feature looks wired and silently does nothing.',
    bad:
      'import asyncpg\n\n\nasync def publish(conn: asyncpg.Connection, job_id: int) -> None:\n    await conn.execute("NOTIFY job_progress")\n\n\n'
      + 'async def listen(conn: asyncpg.Connection) -> None:\n    await conn.add_listener("job-progress", lambda *args: None)\n',
    good:
      'import asyncpg\n\nJOB_PROGRESS = "job_progress"\n\n\nasync def publish(conn: asyncpg.Connection, job_id: int) -> None:\n    await conn.execute(f"NOTIFY {JOB_PROGRESS}")\n\n\n'
      + 'async def listen(conn: asyncpg.Connection) -> None:\n    await conn.add_listener(JOB_PROGRESS, lambda *args: None)\n',
    fix: 'define the channel name once (a shared constant) and use it on both sides',
    references: [
      'https://www.postgresql.org/docs/current/sql-notify.html',
      'https://www.postgresql.org/docs/current/sql-listen.html',
      'https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.add_listener',
    ],
  },
  checkRepo(ctx: RepoRuleContext): void {
    const { publishers, subscribers } = collectSites(ctx.project);
    for (const transport of ['postgres', 'broker'] as const) {
      checkTransport(
        publishers.filter((s) => s.transport === transport),
        subscribers.filter((s) => s.transport === transport),
        (site, severity, message) => ctx.report({
          path: site.file,
          location: { line: site.line, column: 1, endLine: site.line, endColumn: 1 },
          severity,
          message,
        }),
      );
    }
  },
};

/**
 * One transport's names. Near misses are reported at the listener that waits in vain. Orphans
 * need a closed world: a site in application code (a trigger in the schema is an API any client
 * may consume), the other side present in code, and no name on the other side built at run time.
 */
function checkTransport(publishers: Site[], subscribers: Site[], report: (site: Site, severity: Severity, message: string) => void): void {
  const isDynamic = (c: string) => c === 'dynamic' || c.includes('{dynamic}');
  const pubNames = new Set(publishers.map((s) => s.channel).filter((c) => !isDynamic(c)));
  const subNames = new Set(subscribers.map((s) => s.channel).filter((c) => !isDynamic(c)));
  const codePubs = publishers.some((s) => s.inCode);
  const codeSubs = subscribers.some((s) => s.inCode);
  const dynamicPub = publishers.some((s) => isDynamic(s.channel));
  const dynamicSub = subscribers.some((s) => isDynamic(s.channel));
  const mismatchedPubs = new Set<string>();
  for (const site of subscribers) {
    if (isDynamic(site.channel) || pubNames.has(site.channel)) continue;
    const near = [...pubNames].filter((p) => nearMiss(site.channel, p));
    if (near.length) {
      for (const p of near) mismatchedPubs.add(p);
      report(site, 'critical', `${site.what} listens on \`${site.channel}\`, but events are published on ${near.map((n) => `\`${n}\``).join(', ')}: a near miss, this listener never receives them`);
    } else if (site.inCode && publishers.length && !dynamicPub) {
      report(site, 'medium', `${site.what} listens on \`${site.channel}\`, which nothing in the project publishes on`);
    }
  }
  const seen = new Set<string>();
  for (const site of publishers) {
    if (isDynamic(site.channel) || subNames.has(site.channel) || mismatchedPubs.has(site.channel)) continue;
    const key = `${site.file}\0${site.line}\0${site.channel}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if ([...subNames].some((s) => nearMiss(site.channel, s) && !pubNames.has(s))) continue;
    if (site.inCode && codeSubs && !dynamicSub) {
      report(site, 'high', `${site.what} publishes on \`${site.channel}\`, which nothing in the project listens on`);
    }
  }
  void codePubs;
}

/** Publisher and subscriber sites of the context, test code left out, triggers at their function. */
function collectSites(project: ProjectContext): { publishers: Site[]; subscribers: Site[] } {
  const publishers: Site[] = [];
  const subscribers: Site[] = [];
  const migrations = project.migrations;
  const fnByName = new Map((migrations?.notifyFunctions ?? []).map((f) => [f.name.toLowerCase().replace(/^public\./, ''), f]));
  const attached = new Set<string>();
  for (const t of migrations?.triggers ?? []) {
    const fnKey = t.function.toLowerCase().replace(/^public\./, '');
    const fn = fnByName.get(fnKey);
    if (fn) attached.add(fnKey);
    for (const channel of t.channels) {
      publishers.push({ channel, file: fn?.file ?? t.file, line: fn?.line ?? t.line, what: `Trigger \`${t.name}\` (function \`${t.function}\`)`, transport: 'postgres', inCode: false });
    }
  }
  for (const f of migrations?.notifyFunctions ?? []) {
    if (attached.has(f.name.toLowerCase().replace(/^public\./, ''))) continue;
    for (const channel of f.channels) publishers.push({ channel, file: f.file, line: f.line, what: `Function \`${f.name}\``, transport: 'postgres', inCode: false });
  }
  const migrationFiles = new Set(migrations?.files ?? []);
  const inCode = (file: string) => file.endsWith('.py') && !migrationFiles.has(file);
  for (const p of project.events?.publishers ?? []) {
    publishers.push({ channel: p.channel, file: p.file, line: p.line, what: describe(p.kind, 'publisher'), transport: p.kind === 'publish' ? 'broker' : 'postgres', inCode: inCode(p.file) });
  }
  for (const s of project.events?.subscribers ?? []) {
    subscribers.push({ channel: s.channel, file: s.file, line: s.line, what: describe(s.kind, 'subscriber'), transport: s.kind === 'subscribe' ? 'broker' : 'postgres', inCode: inCode(s.file) });
  }
  // `migrations.listens` are left out: a LISTEN lasts as long as its session, and a migration's
  // session ends with the migration. It subscribes nobody.
  const keep = (s: Site) => !isTestPath(s.file);
  return { publishers: publishers.filter(keep), subscribers: subscribers.filter(keep) };
}

function describe(kind: string, fallback: string): string {
  switch (kind) {
    case 'add_listener':
      return '`add_listener`';
    case 'listen':
      return '`LISTEN`';
    case 'subscribe':
      return '`subscribe`';
    case 'publish':
      return '`publish`';
    case 'notify':
      return '`NOTIFY`';
    case 'pg_notify':
      return '`pg_notify`';
    default:
      return kind ? `\`${kind}\`` : `A ${fallback}`;
  }
}

/**
 * Two different names that are probably meant to be the same: equal but for separators or case,
 * within edit distance 1 (names of 3+ characters) or 2 (names of 6+), or one containing the other
 * (the shorter of 4+ characters).
 */
export function nearMiss(a: string, b: string): boolean {
  if (a === b) return false;
  const norm = (s: string) => s.toLowerCase().replace(/[-_.:/\s]/g, '');
  if (norm(a) === norm(b)) return true;
  const shorter = Math.min(a.length, b.length);
  if (shorter >= 4 && (a.includes(b) || b.includes(a))) return true;
  const d = editDistance(a, b, 2);
  if (d === 1) return shorter >= 3;
  if (d === 2) return shorter >= 6;
  return false;
}

/** Levenshtein distance, capped: returns `cap + 1` once it is known to exceed `cap`. */
export function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      if (v < rowMin) rowMin = v;
    }
    if (rowMin > cap) return cap + 1;
    prev = cur;
  }
  return prev[b.length]!;
}
