/**
 * What a project's sessions are set to do, as far as the code says: whether they autoflush
 * (`autoflush`, default `True`), and whether they expire their rows on commit (`expire_on_commit`,
 * SQLAlchemy's default `True`), read from the factories' keywords, and any setting made
 * elsewhere (`ProjectContext.expireOnCommitSettings`: on a session, per call, through
 * `configure`). Which factory a given session came from is not followed, so the answers are
 * project-wide and lean to "not known" when the code disagrees with itself.
 */
import type { ProjectContext, SessionFactoryInfo } from '../discovery/context.js';
import { isTestPath } from './model.js';
import { projectDirOf } from '../discovery/manifests.js';
import { isOneOffPath } from '../analysis/executionContext.js';

/**
 * Do the project's sessions expire on commit: no factory outside tests turns it off or sets it
 * from a value the code cannot read, and nothing else sets it?
 */
export function sessionsExpireOnCommit(project: ProjectContext): boolean {
  return !project.expireOnCommitSettings?.length && project.sessionFactories.every((f) => isTestPath(f.file) || f.expireOnCommit === null || f.expireOnCommit === true);
}

/**
 * Do none of the service's sessions autoflush? Only when it makes its sessions itself, and every
 * factory or session of the service's own code sets `autoflush=False` as a literal (tests and
 * one-off scripts or benchmarks make their own, and answer for their own file only: see
 * `fileSessionsAutoflush`); not with Flask-SQLAlchemy, whose `db.session` is made by the extension
 * (autoflush on unless its options say otherwise).
 */
export function sessionsNeverAutoflush(project: ProjectContext): boolean {
  if (project.flaskDbHandles?.length) return false;
  const own = project.sessionFactories.filter((f) => !isTestPath(f.file) && !isOneOffPath(f.file) && f.kind !== 'scoped_session' && f.kind !== 'async_scoped_session');
  return own.length > 0 && own.every((f) => f.autoflush === false);
}

/** Does a session factory of the file itself leave autoflush on (a script's own `sessionmaker(bind=engine)`)? */
export function fileSessionsAutoflush(project: ProjectContext, path: string): boolean {
  return project.sessionFactories.some((f) => f.file === path && f.autoflush !== false);
}

/** An async session factory: `async_sessionmaker`, `async_scoped_session`, `AsyncSession(...)`, `sessionmaker(class_=AsyncSession)`. */
function isAsyncFactory(f: SessionFactoryInfo): boolean {
  return f.kind === 'async_sessionmaker' || f.kind === 'AsyncSession' || f.kind === 'async_scoped_session' || /AsyncSession\b/.test(f.class ?? '');
}

/**
 * The project's async session factory when every one (outside tests) keeps `expire_on_commit=True`
 * — by the literal or by leaving it out — and nothing else sets it; null when there is none, or
 * when one turns it off or sets it from a value the code cannot read (a name, `**options`).
 */
export function expiringAsyncFactory(project: ProjectContext, path?: string): SessionFactoryInfo | null {
  // Tests' factories are the tests' own business (a fixture's `expire_on_commit=False` says nothing of the app's).
  let factories = project.sessionFactories.filter((f) => !isTestPath(f.file) && isAsyncFactory(f));
  let settings = project.expireOnCommitSettings ?? [];
  // In a tree of several projects (`services/a`, `services/b`, each with its manifest), those of
  // the file's own project when it has any: another service's factory makes none of its sessions.
  if (path !== undefined && project.projects?.length) {
    const own = projectDirOf(project.projects, path);
    const mine = factories.filter((f) => projectDirOf(project.projects!, f.file) === own);
    if (mine.length) {
      factories = mine;
      settings = settings.filter((x) => projectDirOf(project.projects!, x.file) === own);
    }
  }
  if (settings.length || !factories.length || !factories.every((f) => f.expireOnCommit === null || f.expireOnCommit === true)) return null;
  return factories[0]!;
}
