/**
 * The project's session factories (`SessionLocal = sessionmaker(...)`, `async_sessionmaker(...)`
 * at module level) and the ways code reaches one without calling it by its own name: a local
 * alias (`maker = SessionLocal; with maker() as s:`), an attribute a class keeps it in
 * (`self.maker = async_sessionmaker(...)` in `__init__`, `maker = SessionLocal` in the body of a
 * class or of a subclass in another module), and a getter method returning that attribute
 * (`maker = self.get_maker()`, also after guards that only raise). Rules that ask "does this call open a fresh session?"
 * share these answers.
 */
import type { ProjectContext, SessionFactoryInfo, SessionHelperInfo } from '../discovery/context.js';
import type { SyntaxNode } from '../parse/parser.js';
import { assignmentsTo, moduleNameOf, resolveImported, type FileModel } from './model.js';
import { typeString } from './valueTypes.js';

const factoriesMemo = new WeakMap<ProjectContext, Map<string, SessionFactoryInfo>>();

/** Module-level `sessionmaker` / `async_sessionmaker` factories of the project, by qualified name (`app.db.SessionLocal`). */
export function projectFactories(project: ProjectContext): ReadonlyMap<string, SessionFactoryInfo> {
  let out = factoriesMemo.get(project);
  if (!out) {
    out = new Map();
    for (const f of project.sessionFactories) {
      if (f.name && !f.function && (f.kind === 'sessionmaker' || f.kind === 'async_sessionmaker')) out.set(`${moduleNameOf(f.file)}.${f.name}`, f);
    }
    factoriesMemo.set(project, out);
  }
  return out;
}

const helpersMemo = new WeakMap<ProjectContext, Map<string, SessionHelperInfo>>();

/**
 * The project's functions that return a new session or connection on every call
 * (`def get_session_sync() -> Session: return Session(engine)`), by qualified name; not a class
 * that owns and closes what it makes.
 */
export function projectSessionHelpers(project: ProjectContext): ReadonlyMap<string, SessionHelperInfo> {
  let out = helpersMemo.get(project);
  if (!out) {
    out = new Map();
    for (const h of project.sessionHelpers ?? []) if (!h.owner) out.set(`${moduleNameOf(h.file)}.${h.name}`, h);
    helpersMemo.set(project, out);
  }
  return out;
}

/** The project helper a call by name makes its session or connection with (`s = get_session_sync()`, `db.new_session()`), or null. */
export function sessionHelperOfCall(model: FileModel, project: ProjectContext, call: SyntaxNode): SessionHelperInfo | null {
  const helpers = projectSessionHelpers(project);
  if (!helpers.size || call.type !== 'call') return null;
  const callee = call.childForFieldName('function');
  if (!callee || (callee.type !== 'identifier' && callee.type !== 'attribute')) return null;
  const q = resolveImported(model, callee.text.replace(/\s+/g, ''));
  return q ? helpers.get(q) ?? null : null;
}

/** Is the type path a session factory (a `sessionmaker(...)` result, the class itself, a factory of the project)? */
export function isSessionFactoryType(project: ProjectContext, t: string | null): boolean {
  if (!t) return false;
  if (/(^|\.)(async_)?sessionmaker\(\)$/.test(t) && !t.includes('scoped_session')) return true;
  if (/^@(sqlalchemy|sqlmodel)(\.[\w]+)*\.(async_)?sessionmaker$/.test(t)) return true;
  return projectFactories(project).has(t);
}

/**
 * The project factory a callee expression stands for, when it is not the factory's own name:
 * a name whose type path is the factory (a local alias, an import under another name), `self.<attr>`
 * for an attribute some class of the project binds to it, or a local bound from a getter of the
 * same class whose body is `return self.<attr>`. Null otherwise (a session class, a factory made
 * in the function, anything unknown).
 */
export function factoryBehind(model: FileModel, project: ProjectContext, callee: SyntaxNode | null, fnIndex: number, line: number): SessionFactoryInfo | null {
  if (!callee || (callee.type !== 'identifier' && callee.type !== 'attribute')) return null;
  const factories = projectFactories(project);
  if (!factories.size) return null;
  const t = typeString(model, callee, fnIndex, line);
  const typed = t ? factories.get(t) : undefined;
  if (typed) return typed;
  const attr = selfAttribute(callee);
  if (attr) return attributeFactory(project, attr);
  if (callee.type !== 'identifier' || fnIndex < 0) return null;
  // `maker = self.get_maker()`: the last binding of the name before the line.
  let bound = null;
  for (const a of assignmentsTo(model, callee.text)) if (a.functionIndex === fnIndex && a.line <= line && !a.fromWith && (!bound || a.line >= bound.line)) bound = a;
  const v = bound?.value;
  if (v?.type !== 'call' || v.childForFieldName('arguments')?.namedChildren.length) return null;
  const getter = selfAttribute(v.childForFieldName('function'));
  const cls = model.functions[fnIndex]!.className;
  const method = getter && cls ? model.functions.find((f) => f.className === cls && f.name === getter && f.body) : undefined;
  const returned = method ? returnedSelfAttribute(method.body!) : null;
  return returned ? attributeFactory(project, returned) : null;
}

/** `self.x` / `cls.x` → `x`. */
function selfAttribute(node: SyntaxNode | null): string | null {
  if (node?.type !== 'attribute') return null;
  const obj = node.childForFieldName('object');
  if (obj?.type !== 'identifier' || (obj.text !== 'self' && obj.text !== 'cls')) return null;
  return node.childForFieldName('attribute')?.text ?? null;
}

/**
 * The attribute a getter returns (`return self.session_maker`), or null: its body is that one
 * `return`, after guards that only raise (`if self.session_maker is None: raise RuntimeError(...)`).
 */
function returnedSelfAttribute(body: SyntaxNode): string | null {
  const stmts = body.namedChildren.filter((c) => c.type !== 'comment' && !(c.type === 'expression_statement' && c.namedChild(0)?.type === 'string'));
  const last = stmts[stmts.length - 1];
  if (last?.type !== 'return_statement') return null;
  const raisesOnly = (s: SyntaxNode) => s.type === 'if_statement' && !s.childForFieldName('alternative')
    && (s.childForFieldName('consequence')?.namedChildren.filter((c) => c.type !== 'comment').every((c) => c.type === 'raise_statement') ?? false);
  if (!stmts.slice(0, -1).every(raisesOnly)) return null;
  return selfAttribute(last.namedChild(0));
}

function attributeFactory(project: ProjectContext, attr: string): SessionFactoryInfo | null {
  const q = project.factoryAttributes?.[attr];
  return q ? projectFactories(project).get(q) ?? null : null;
}
