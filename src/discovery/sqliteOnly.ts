/** Is SQLite the project's only database? A fact of the context that the merge asks per finding. */
import type { ProjectContext } from './context.js';
import { isTestPath } from '../semantic/model.js';

/** Drivers of SQLite; any other driver in the manifests is a database server's. */
const SQLITE_DRIVER = /sqlite/i;
const sqliteMemo = new WeakMap<ProjectContext, string | null>();

/**
 * Is SQLite the project's only database, and on what evidence (null when not)? An engine of the
 * project's code (not a test's, not a migration's) whose URL is `sqlite:` (or that passes
 * `connect_args={"check_same_thread": ...}` as a dict, an argument only sqlite3 takes), no server
 * database or driver named anywhere (manifests, compose files, engine URLs), and either a
 * manifest that was read (it would name the server's driver) or every engine of the project's
 * code known to be SQLite. A statement there is a call into a library in the process, with no
 * network round trip (see https://www.sqlite.org/np1queryprob.html).
 */
export function sqliteOnlyEvidence(ctx: ProjectContext): string | null {
  if (sqliteMemo.has(ctx)) return sqliteMemo.get(ctx)!;
  const isSqlite = (scheme: string | null) => scheme !== null && /^sqlite/i.test(scheme);
  const inMigrations = (file: string) => ctx.migrations.files.includes(file) || /(^|\/)(migrations|alembic)\/env\.py$/.test(file);
  const engines = ctx.engines.filter((e) => !inMigrations(e.file) && !isTestPath(e.file));
  const server = ctx.summary.databases.some((d) => !/^SQLite\b/i.test(d))
    || ctx.summary.drivers.some((d) => !SQLITE_DRIVER.test(d))
    || ctx.engines.some((e) => e.urlScheme !== null && !isSqlite(e.urlScheme));
  // A manifest read: an entry of the stack found in something other than Python code (an
  // engine's own URL adds one from its `.py` file).
  const manifest = Object.values(ctx.stack).some((e) => !e.source.endsWith('.py'));
  const sqlite = engines.find((e) => isSqlite(e.urlScheme));
  let evidence: string | null = null;
  if (!server && sqlite && (manifest || engines.every((e) => isSqlite(e.urlScheme)))) {
    evidence = `the project's only database is SQLite (the engine in ${sqlite.file}:${sqlite.line}; no server database or driver in its manifests): each statement is a call into the process, with no network round trip`;
  }
  sqliteMemo.set(ctx, evidence);
  return evidence;
}
