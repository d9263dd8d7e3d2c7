/**
 * Facts about a file that come from the project context, shared by the rules. The context is
 * one object per worker, so lookups built from it are built once per worker, not per file: a
 * monorepo's context holds thousands of models and migration files.
 */
import { projectDirOf, underDirectories } from '../discovery/manifests.js';
import type { EngineInfo, ModelInfo, ProjectContext } from '../discovery/context.js';
import { isTestPath, moduleNameOf, type FileModel } from '../semantic/model.js';
import { isOneOffPath } from '../analysis/executionContext.js';
import type { FileSummary } from '../analysis/summary.js';
import { makesAsyncSessions, yieldsOrmSession } from '../semantic/asyncSessions.js';
import { sessionsNeverAutoflush } from '../semantic/sessionExpiry.js';

export interface ProjectIndex {
  migrationFiles: ReadonlySet<string>;
  /** Models by class name (a name may be declared in several services). */
  modelsByName: ReadonlyMap<string, ModelInfo[]>;
  modelClasses: ReadonlySet<string>;
  modelModules: ReadonlyMap<string, readonly string[]>;
  /** Flask-SQLAlchemy `SQLAlchemy()` object names (`db`): `db.session` is a session. */
  flaskDbHandles: ReadonlySet<string>;
  /** See `ProjectContext.flaskSessionAliases`. */
  flaskSessionAliases: ReadonlySet<string>;
  /** Module-level `scoped_session(...)` object names (`Session`): `meta.Session.query(...)` is a session call anywhere. */
  scopedSessions: ReadonlyMap<string, readonly string[]>;
  /** `Model.attr` of the relationships loaded `lazy="dynamic"`: reading one gives a query. */
  dynamicRelations: ReadonlySet<string>;
  anyRelationships: boolean;
  /** The project's class-based views (see `classViews`). */
  viewClasses: ReadonlySet<string>;
  enginesByFile: ReadonlyMap<string, EngineInfo[]>;
  /** See `FileModel.projectHandles`. */
  projectHandles: ReadonlyMap<string, string>;
  /** See `FileModel.autoflushOff`. */
  autoflushOff: boolean;
}

/**
 * Module-level session factories and engines by qualified name, as the type path of what they
 * are (`app.db.SessionLocal` → `sqlalchemy.orm.sessionmaker()`). A name bound twice in one module
 * to different kinds is left out.
 */
function projectHandleTypes(project: ProjectContext): Map<string, string> {
  const out = new Map<string, string>();
  const clash = new Set<string>();
  const add = (file: string, name: string | null, type: string) => {
    if (!name || !/^[A-Za-z_]\w*$/.test(name)) return;
    const q = `${moduleNameOf(file)}.${name}`;
    if (out.has(q) && out.get(q) !== type) clash.add(q);
    out.set(q, type);
  };
  for (const f of project.sessionFactories) {
    if (f.function !== null) continue;
    if (makesAsyncSessions(f)) add(f.file, f.name, 'sqlalchemy.ext.asyncio.async_sessionmaker()');
    else if (f.kind === 'sessionmaker') add(f.file, f.name, 'sqlalchemy.orm.sessionmaker()');
  }
  for (const e of project.engines) {
    if (e.function !== null || !/(^|\.)create_(async_)?engine$/.test(e.factory)) continue;
    add(e.file, e.name, e.async ? 'sqlalchemy.ext.asyncio.create_async_engine()' : 'sqlalchemy.create_engine()');
  }
  // Session providers of the project (a function or a class's method that yields a session,
  // used as a context manager or a generator): a call hands out a session (`=>T`).
  // Only a provider that yields SQLAlchemy's session or one of the project's session factories'
  // (not an `aiohttp.ClientSession()` or `requests.Session()` a provider hands out too).
  const orm = yieldsOrmSession(project);
  for (const p of project.sessionProviders) {
    if (!/^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$/.test(p.name) || !orm(p)) continue;
    const q = `${moduleNameOf(p.file)}.${p.name}`;
    const type = p.async ? '=>sqlalchemy.ext.asyncio.AsyncSession' : '=>sqlalchemy.orm.Session';
    if (out.has(q) && out.get(q) !== type) clash.add(q);
    out.set(q, type);
  }
  for (const q of clash) out.delete(q);
  return out;
}

const indexes = new WeakMap<ProjectContext, ProjectIndex>();

/** Module-level `scoped_session(...)` objects by name, with the modules that define them. */
function scopedSessionModules(project: ProjectContext): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of project.sessionFactories) {
    if (f.kind !== 'scoped_session' || f.function !== null || f.name === null) continue;
    const list = out.get(f.name) ?? [];
    list.push(moduleNameOf(f.file));
    out.set(f.name, list);
  }
  return out;
}

export function projectIndex(project: ProjectContext): ProjectIndex {
  let index = indexes.get(project);
  if (index) return index;
  const modelsByName = new Map<string, ModelInfo[]>();
  for (const m of project.models) {
    const list = modelsByName.get(m.name);
    if (list) list.push(m);
    else modelsByName.set(m.name, [m]);
  }
  const enginesByFile = new Map<string, EngineInfo[]>();
  for (const e of project.engines) {
    const list = enginesByFile.get(e.file);
    if (list) list.push(e);
    else enginesByFile.set(e.file, [e]);
  }
  index = {
    enginesByFile,
    migrationFiles: new Set(project.migrations.files),
    modelsByName,
    modelClasses: new Set(modelsByName.keys()),
    modelModules: new Map([...modelsByName].map(([name, ms]) => [name, [...new Set(ms.map((m) => moduleNameOf(m.file)))]])),
    flaskDbHandles: new Set(project.flaskDbHandles ?? []),
    flaskSessionAliases: new Set(project.flaskSessionAliases ?? []),
    scopedSessions: scopedSessionModules(project),
    dynamicRelations: new Set(project.models.flatMap((m) => m.relationships.filter((r) => r.lazy === 'dynamic').map((r) => `${m.name}.${r.name}`))),
    anyRelationships: project.models.some((m) => m.relationships.length > 0),
    viewClasses: new Set(project.viewClasses ?? []),
    projectHandles: projectHandleTypes(project),
    autoflushOff: sessionsNeverAutoflush(project),
  };
  indexes.set(project, index);
  return index;
}

/**
 * The project's models a class name in `file` can mean. A class of that name defined in the
 * file itself shadows them (a migration's own narrow `Table`, a local stand-in) unless it is
 * one of them; a name imported from a module means the models of that module when it has one.
 */
export function modelsNamed(project: ProjectContext, file: FileModel, name: string): ModelInfo[] {
  // Asked for every candidate call of a file; in a monorepo a common model name has hundreds of
  // declarations, each looked at: once per file and name.
  let byName = namedMemo.get(file);
  if (!byName || namedProject.get(file) !== project) {
    namedMemo.set(file, (byName = new Map()));
    namedProject.set(file, project);
  }
  let hit = byName.get(name);
  if (!hit) byName.set(name, (hit = modelsNamedUncached(project, file, name)));
  return hit;
}

const namedMemo = new WeakMap<FileModel, Map<string, ModelInfo[]>>();
const namedProject = new WeakMap<FileModel, ProjectContext>();

/** {@link modelsNamedFrom} as a file of the repo index sees the name (its summary's imports and definitions). */
export function modelsNamedInSummary(project: ProjectContext, file: Pick<FileSummary, 'path' | 'moduleName' | 'moduleDefs' | 'imports'>, name: string): ModelInfo[] {
  return modelsNamedFrom(project, {
    path: file.path, moduleName: file.moduleName,
    defines: (n) => file.moduleDefs.includes(n), imported: (n) => file.imports.find(([k]) => k === n)?.[1],
  }, name);
}

function modelsNamedUncached(project: ProjectContext, file: FileModel, name: string): ModelInfo[] {
  return modelsNamedFrom(project, { path: file.path, moduleName: file.moduleName, defines: (n) => file.moduleDefs.has(n), imported: (n) => file.imports.get(n) }, name);
}

/** What a module says about a name: its path and module name, whether it defines it, where it imports it from. */
export interface NameScope {
  path: string;
  moduleName: string;
  defines(name: string): boolean;
  imported(name: string): string | undefined;
}

/**
 * {@link modelsNamed} for a module the caller knows only by its facts (the repo phase's
 * summaries: `imports`, `moduleDefs`).
 */
export function modelsNamedFrom(project: ProjectContext, file: NameScope, name: string): ModelInfo[] {
  const all = projectIndex(project).modelsByName.get(name) ?? [];
  if (!all.length) return all;
  const where = declarations(project, name, all);
  const own = where.byModule.get(file.moduleName)?.filter((m) => m.file === file.path);
  if (own?.length) return own;
  if (file.defines(name)) return [];
  const imported = file.imported(name);
  if (imported) {
    const module = imported.slice(0, imported.lastIndexOf('.'));
    // The usual case first: imported from the module that declares it.
    const exact = where.byModule.get(module);
    if (exact?.length) return exact;
    const from = all.filter((m) => {
      const mod = where.moduleOf.get(m)!;
      return mod.endsWith(module) || module.endsWith(mod);
    });
    if (from.length) return from;
  }
  return nearestModels(project, all, file.path);
}

/**
 * Of models of one name declared in several projects of a tree (`services/billing/...` and
 * `services/shop/...`, each with its own manifest and a `Tag`), those of the project that holds
 * `path`: the deepest directory with a manifest above it. All of them when they are all in one
 * project, or none is in the file's.
 */
export function nearestModels(project: ProjectContext, all: ModelInfo[], path: string): ModelInfo[] {
  const dirs = project.projects;
  if (!dirs?.length || all.length < 2) return all;
  const projectOf = (p: string) => projectDirOf(dirs, p);
  const own = projectOf(path);
  const of = all.map((m) => projectOf(m.file));
  if (new Set(of).size < 2) return all;
  const near = all.filter((_, i) => of[i] === own);
  return near.length > 0 && near.length < all.length ? near : all;
}

interface Declarations {
  byModule: Map<string, ModelInfo[]>;
  moduleOf: Map<ModelInfo, string>;
}

const declarationMemo = new WeakMap<ProjectContext, Map<string, Declarations>>();

/** The declarations of one model name by module, once per project and name. */
function declarations(project: ProjectContext, name: string, all: ModelInfo[]): Declarations {
  let byName = declarationMemo.get(project);
  if (!byName) declarationMemo.set(project, (byName = new Map()));
  let d = byName.get(name);
  if (!d) {
    d = { byModule: new Map(), moduleOf: new Map() };
    for (const m of all) {
      const mod = moduleNameOf(m.file);
      d.moduleOf.set(m, mod);
      const list = d.byModule.get(mod);
      if (list) list.push(m);
      else d.byModule.set(mod, [m]);
    }
    byName.set(name, d);
  }
  return d;
}

const MIGRATION_DIRS = /(^|\/)(alembic|migrations)\//;

/**
 * A migration (or the alembic environment next to them): run once by the migration tool on a
 * connection it owns and closes, in a short-lived process.
 */
export function isMigrationFile(project: ProjectContext, path: string): boolean {
  // Several rules ask about every file, and a monorepo has hundreds of script locations.
  let known = migrationAnswers.get(project);
  if (!known) {
    known = { answers: new Map(), underLocation: underDirectories(project.migrations.scriptLocations) };
    migrationAnswers.set(project, known);
  }
  let answer = known.answers.get(path);
  if (answer === undefined) known.answers.set(path, (answer = decideMigrationFile(project, known.underLocation, path)));
  return answer;
}

/** Code that never serves a request or a job: tests, migrations, one-off scripts and tools. */
export function offlineFile(project: ProjectContext, path: string): boolean {
  return isTestPath(path) || isMigrationFile(project, path) || isOneOffPath(path);
}

const migrationAnswers = new WeakMap<ProjectContext, { answers: Map<string, boolean>; underLocation: (path: string) => boolean }>();

function decideMigrationFile(project: ProjectContext, underLocation: (path: string) => boolean, path: string): boolean {
  if (MIGRATION_DIRS.test(path)) return true;
  if (projectIndex(project).migrationFiles.has(path)) return true;
  // Alembic's env.py, next to the versions/ directory of migrations it runs.
  if (/(^|\/)env\.py$/.test(path)) {
    const dir = path.slice(0, path.length - 'env.py'.length);
    if (project.migrations.files.some((f) => f.startsWith(`${dir}versions/`))) return true;
  }
  return underLocation(path);
}
