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
  names: QualifiedIndex<string>;
  /** The last names of the getters that are methods: reached on objects whose class is not known. */
  methods: Set<string>;
}

const indexes = new WeakMap<readonly EngineGetterInfo[], GetterIndex>();

function indexOf(getters: readonly EngineGetterInfo[]): GetterIndex {
  let ix = indexes.get(getters);
  if (!ix) {
    ix = { names: new QualifiedIndex(getters.map((g) => g.name), (n) => n), methods: new Set(getters.filter((g) => g.byName).map((g) => g.name.slice(g.name.lastIndexOf('.') + 1))) };
    indexes.set(getters, ix);
  }
  return ix;
}

/** Is `qualified` (`app.db.get_engine`, as written from any package root) one of the project's engine getters? */
export function isEngineGetterName(project: ProjectContext, qualified: string): boolean {
  const getters = project.engineGetters;
  if (!getters?.length) return false;
  return indexOf(getters).names.get(qualified) !== undefined;
}

/**
 * Is `node` a call of one of the project's engine getters: a function by its imported or own
 * name, a method of the enclosing class on `self`/`cls`, or a getter method (its name says
 * engine) called on any object, whose class the call site may not know
 * (`DatastoreBackend.get_active_backend()._get_write_engine()`).
 */
export function isEngineGetterCall(model: FileModel, project: ProjectContext, node: SyntaxNode | null, fnIndex: number): boolean {
  if (node?.type !== 'call' || !project.engineGetters?.length) return false;
  const callee = node.childForFieldName('function');
  if (!callee) return false;
  if (callee.type === 'identifier') {
    return isEngineGetterName(project, resolveImported(model, callee.text) ?? `${model.moduleName}.${callee.text}`);
  }
  if (callee.type !== 'attribute') return false;
  const method = callee.childForFieldName('attribute')?.text ?? '';
  const object = callee.childForFieldName('object');
  const cls = fnIndex >= 0 ? model.functions[fnIndex]!.className : null;
  if (object?.type === 'identifier' && (object.text === 'self' || object.text === 'cls') && cls) {
    if (isEngineGetterName(project, `${model.moduleName}.${cls}.${method}`)) return true;
  } else if (object && /^[A-Za-z_][\w.]*$/.test(object.text)) {
    const q = resolveImported(model, callee.text);
    if (q && isEngineGetterName(project, q)) return true;
  }
  // An object whose class the file knows (`client: SearchClient`, `Database()`): that class's
  // method, by its qualified name, or nothing.
  // (A type that is another call's result, `Backend.get_active()`, names no class: unknown.)
  const type = object ? typeString(model, object, fnIndex, node.startPosition.row + 1) : null;
  const path = type?.replace(/^@/, '').replace(/\(\)$/, '') ?? '';
  if (/^([\w]+\.)*[A-Z]\w*$/.test(path)) return isEngineGetterName(project, `${path}.${method}`);
  return /engine/i.test(method) && indexOf(project.engineGetters).methods.has(method);
}
