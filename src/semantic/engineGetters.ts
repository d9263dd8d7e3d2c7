/**
 * Calls that hand out an engine through the project's own getters (discovery's
 * `engineGetters`): `get_write_engine()`, `backend._get_write_engine()`. What they return is an
 * engine, so `.connect()` on it opens a connection its caller owns.
 */
import type { SyntaxNode } from '../parse/parser.js';
import type { EngineGetterInfo, ProjectContext } from '../discovery/context.js';
import { QualifiedIndex, resolveImported, type FileModel } from './model.js';
import { typeString } from './valueTypes.js';

interface GetterIndex {
  /** The getters by qualified name, written from any package root. */
  names: QualifiedIndex<EngineGetterInfo>;
  /** The getter methods by last name: reached on objects whose class is not known. */
  methods: Map<string, EngineGetterInfo>;
  /** Methods named for an engine that hand out something else (`SearchClient.get_engine`). */
  others: QualifiedIndex<string>;
}

const indexes = new WeakMap<ProjectContext, GetterIndex>();

function indexOf(project: ProjectContext): GetterIndex {
  let ix = indexes.get(project);
  if (!ix) {
    const getters = project.engineGetters ?? [];
    const methods = new Map<string, EngineGetterInfo>();
    for (const g of getters) if (g.byName) methods.set(g.name.slice(g.name.lastIndexOf('.') + 1), g);
    ix = { names: new QualifiedIndex(getters, (g) => g.name), methods, others: new QualifiedIndex(project.engineNamedMethods ?? [], (n) => n) };
    indexes.set(project, ix);
  }
  return ix;
}

/** The project's engine getter named `qualified` (`app.db.get_engine`, as written from any package root), if any. */
export function engineGetterNamed(project: ProjectContext, qualified: string): EngineGetterInfo | undefined {
  if (!project.engineGetters?.length) return undefined;
  return indexOf(project).names.get(qualified);
}

export function isEngineGetterName(project: ProjectContext, qualified: string): boolean {
  return engineGetterNamed(project, qualified) !== undefined;
}

/**
 * The getter `node` calls, when it is one of the project's engine getters: a function by its
 * imported or own name, a method of the enclosing class on `self`/`cls`, a method of the class an
 * object is known to have, or a getter method (its name says engine) called on an object whose
 * class the call site does not know (`DatastoreBackend.get_active_backend()._get_write_engine()`).
 */
export function engineGetterCall(model: FileModel, project: ProjectContext, node: SyntaxNode | null, fnIndex: number): EngineGetterInfo | null {
  if (node?.type !== 'call' || !project.engineGetters?.length) return null;
  const callee = node.childForFieldName('function');
  if (!callee) return null;
  if (callee.type === 'identifier') {
    return engineGetterNamed(project, resolveImported(model, callee.text) ?? `${model.moduleName}.${callee.text}`) ?? null;
  }
  if (callee.type !== 'attribute') return null;
  const method = callee.childForFieldName('attribute')?.text ?? '';
  const object = callee.childForFieldName('object');
  const cls = fnIndex >= 0 ? model.functions[fnIndex]!.className : null;
  const ix = indexOf(project);
  if (object?.type === 'identifier' && (object.text === 'self' || object.text === 'cls') && cls) {
    const own = engineGetterNamed(project, `${model.moduleName}.${cls}.${method}`);
    if (own) return own;
  } else if (object && /^[A-Za-z_][\w.]*$/.test(object.text)) {
    const q = resolveImported(model, callee.text);
    const named = q ? engineGetterNamed(project, q) : undefined;
    if (named) return named;
  }
  // An object whose class the file knows (`client: SearchClient`, `Database()`): that class's
  // own method when it is a getter; nothing when that method hands out something else; else (a
  // base class's method, an instance, a call's result) the method's name decides, as below.
  const type = object ? typeString(model, object, fnIndex, node.startPosition.row + 1) : null;
  const path = type?.replace(/^@/, '').replace(/\(\)$/, '') ?? '';
  if (/^[\w.]+$/.test(path)) {
    const typed = engineGetterNamed(project, `${path}.${method}`);
    if (typed) return typed;
    if (ix.others.get(`${path}.${method}`) !== undefined) return null;
  }
  return /engine/i.test(method) ? ix.methods.get(method) ?? null : null;
}

/** Is `node` a call of one of the project's engine getters ({@link engineGetterCall})? */
export function isEngineGetterCall(model: FileModel, project: ProjectContext, node: SyntaxNode | null, fnIndex: number): boolean {
  return engineGetterCall(model, project, node, fnIndex) !== null;
}
