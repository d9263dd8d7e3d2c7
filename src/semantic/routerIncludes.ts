/**
 * FastAPI dependencies that a route gets from where its router is mounted, not from its own
 * signature: `app.include_router(users.router, dependencies=[Depends(current_user)])`, a router or
 * application made with `APIRouter(dependencies=[...])` / `FastAPI(dependencies=[...])` that
 * includes another router, and so on down the tree of includes. FastAPI runs each of them for every
 * request to every route below, before the endpoint, within the request's dependency scope.
 *
 * Per file: `[router, what it gets]` pairs, by qualified name — the router included
 * (`app.api.users.router`), and either a dependency it runs (`app.deps.current_user`) or, prefixed
 * with `@`, the router or application that includes it (whose own dependencies it inherits). The
 * repo phase joins the files' pairs (see {@link routerDependencies}).
 */
import type { SyntaxNode } from '../parse/parser.js';
import { assignmentsTo, resolveName, type FileModel } from './model.js';

/** `[included router, dependency or '@' + including router]`. */
export type RouterInclude = [string, string];

const DEPENDS = /(?:^|[^\w])(?:Depends|Security)\(\s*(?:dependency\s*=\s*)?([A-Za-z_][\w.]*)(\s*\()?/g;
/** A router or application made with dependencies of its own. */
const ROUTER_MAKER = /(?:^|\.)(?:FastAPI|APIRouter)$/;

/** See the module comment. */
export function routerIncludes(model: FileModel): RouterInclude[] {
  if (!model.source.includes('include_router')) return [];
  const out: RouterInclude[] = [];
  const seen = new Set<string>();
  const add = (router: string, what: string) => {
    const key = `${router} ${what}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push([router, what]);
    }
  };
  for (const call of model.calls) {
    if (call.method !== 'include_router' || !call.receiver) continue;
    const args = call.node.childForFieldName('arguments')?.namedChildren.filter((a) => a.type !== 'comment') ?? [];
    const first = args[0];
    const routerNode = first?.type === 'keyword_argument' ? (first.childForFieldName('name')?.text === 'router' ? first.childForFieldName('value') : null) : first;
    const router = routerNode ? qualified(model, routerNode, call.functionIndex) : null;
    if (!router) continue;
    for (const a of args) {
      if (a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'dependencies') {
        for (const d of dependencyNames(model, a.childForFieldName('value'))) add(router, d);
      }
    }
    // What the including router or application runs for its own routes runs for these too.
    const including = qualified(model, call.receiver, call.functionIndex);
    if (including) add(router, `@${including}`);
    if (call.receiver.type === 'identifier') {
      for (const a of assignmentsTo(model, call.receiver.text)) {
        const v = a.value;
        if (v?.type !== 'call' || !ROUTER_MAKER.test(resolveName(model, v.childForFieldName('function')?.text ?? '') ?? '')) continue;
        for (const kw of v.childForFieldName('arguments')?.namedChildren ?? []) {
          if (kw.type === 'keyword_argument' && kw.childForFieldName('name')?.text === 'dependencies') {
            for (const d of dependencyNames(model, kw.childForFieldName('value'))) add(router, d);
          }
        }
      }
    }
  }
  return out;
}

/**
 * The dependencies a `dependencies=[Depends(a), Security(b, scopes=...)]` list names, as written:
 * `a`, or `A.__call__` for one called there (`Depends(RequireRole("admin"))`: FastAPI runs the
 * instance's `__call__`, or the function a factory returns, per request).
 */
export function listedDependencies(listText: string): string[] {
  return [...listText.matchAll(DEPENDS)].map((m) => (m[2] ? `${m[1]!}.__call__` : m[1]!));
}

/** The qualified dependencies of such a list. */
function dependencyNames(model: FileModel, list: SyntaxNode | null): string[] {
  if (!list) return [];
  const out: string[] = [];
  for (const name of listedDependencies(list.text)) {
    const q = resolveName(model, name);
    if (q && q.includes('.') && !q.startsWith('builtins.')) out.push(q);
  }
  return out;
}

/**
 * `router`, `users.router`, `api.v1.router`: by the file's imports and module-level names; a
 * router made inside the function that mounts it (`api = APIRouter()` in `create_app()`) by the
 * function's qualified name (`app.main.create_app.api`), the same in both roles.
 */
function qualified(model: FileModel, node: SyntaxNode, fnIndex: number): string | null {
  if (node.type !== 'identifier' && node.type !== 'attribute') return null;
  const text = node.text.replace(/\s+/g, '');
  // A binding in the mounting function shadows a module-level router of the same name.
  const fn = fnIndex >= 0 ? model.functions[fnIndex] : undefined;
  if (node.type === 'identifier' && fn && assignmentsTo(model, text).some((a) => a.functionIndex === fnIndex)) return `${model.moduleName}.${fn.qualifiedName}.${text}`;
  const q = resolveName(model, text);
  return q && q.includes('.') && !q.startsWith('builtins.') ? q : null;
}

/**
 * Every router's dependencies from the files' pairs: its own and, through the `@` links, those of
 * the routers and applications that include it (transitively; cycles end).
 */
export function routerDependencies(pairs: Iterable<RouterInclude>): Map<string, Set<string>> {
  const direct = new Map<string, Set<string>>();
  const parents = new Map<string, Set<string>>();
  for (const [router, what] of pairs) {
    const into = what.startsWith('@') ? parents : direct;
    let set = into.get(router);
    if (!set) into.set(router, (set = new Set()));
    set.add(what.startsWith('@') ? what.slice(1) : what);
  }
  const out = new Map<string, Set<string>>();
  const resolve = (router: string, path: Set<string>): Set<string> => {
    const done = out.get(router);
    if (done) return done;
    const all = new Set(direct.get(router) ?? []);
    path.add(router);
    for (const p of parents.get(router) ?? []) {
      if (path.has(p)) continue;
      for (const d of resolve(p, path)) all.add(d);
    }
    path.delete(router);
    out.set(router, all);
    return all;
  };
  for (const r of new Set([...direct.keys(), ...parents.keys()])) resolve(r, new Set());
  return out;
}
