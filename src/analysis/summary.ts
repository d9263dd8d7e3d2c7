/**
 * File summaries: the compact, plain-data facts a worker returns for each file so that the
 * repo phase can follow calls across functions and files without any syntax tree.
 */
import type { CallInfo, EntryPoint, FileModel, FunctionRole } from '../semantic/model.js';
import type { SyntaxNode } from '../parse/parser.js';
import { assignmentsTo, effectiveRole, inTreeModule, NAMED_LOOKUP, resolveName } from '../semantic/model.js';
import { adminOnly } from '../semantic/adminOnly.js';
import { conditionalInFunction, inExceptHandler } from '../semantic/controlFlow.js';
import { isMemoisedCall } from '../semantic/memo.js';
import { spawnedTask } from '../semantic/externalCalls.js';
import { dictKeysSet, flagGuard, isMaybeNone, ownFlag, ownKwargs, passedArguments } from '../semantic/guards.js';
import { exportedTypes } from '../semantic/valueTypes.js';
import { schemaInstances } from '../semantic/schemas.js';
import { GROWS, returnsSmallLiteral, smallLiteral } from '../semantic/smallLiterals.js';
import { routerIncludes, type RouterInclude } from '../semantic/routerIncludes.js';
import { classifyHandle } from '../semantic/db.js';
import { isBlockingClientType } from '../semantic/blockingIo.js';
import { isNetworkClientType } from '../semantic/externalCalls.js';
import { FN_ADMIN, objectFacts, typePathHead, UNTYPED, type ParamUse, type SummaryClass, type SummaryRef } from './objects.js';

/** Something a function does that matters to a caller on the event loop or in a loop. */
export interface Effect {
  /** Effect kind, e.g. `blocking_io`, `sync_sleep`, `sync_db`, `cpu`, `query`, `write`, `commit`. */
  kind: string;
  /** What is called, e.g. `time.sleep` or `Path.write_bytes`. */
  what: string;
  line: number;
  column: number;
  /**
   * Set when the file could not decide the effect: a DB call on a receiver whose type path
   * (`Depends(app.deps.get_db)`, `app.db.SessionLocal()`) names another module. The repo phase
   * resolves the path and keeps the effect only when it is a sync handle.
   */
  pending?: { typePath: string; method: string };
  /**
   * Only under a flag guard of its function (`if allow_email:` where `allow_email=False`), as
   * `name@position` (see semantic/guards.ts): a call that leaves the flag off does not reach it.
   */
  guard?: string;
}

export interface SummaryCall {
  calleeText: string;
  qualifiedName: string | null;
  method: string;
  functionIndex: number;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  awaited: boolean;
  offloaded: boolean;
  inLoop: boolean;
  /** The receiver's type path when the repo phase may resolve it to a class of the repo (see objects.ts). */
  receiverType: string | null;
  /** The call is a `with`/`async with` item: its value's `__enter__`/`__aenter__` runs too. */
  withItem: boolean;
  /**
   * Repo phase only: a function handed to a callee that calls it once per item of a loop
   * (`paginate(rows, render)` where `paginate` runs `render(row)` for each row). The name of
   * that callee.
   */
  perItemIn?: string;
  /**
   * Repo phase only: a function handed to `BackgroundTasks.add_task(...)` / `BackgroundTask(...)`:
   * it runs after the response has been sent, not at this call.
   */
  background?: boolean;
  /**
   * Runs only sometimes when its function runs: under a condition, in a handler or a loop
   * (`get_or_create` commits only when it creates). Set for calls that may name a repo function.
   */
  conditional?: boolean;
  /** Runs only in an `except` handler of its function: when the `try` failed (in a loop, once per failing item). */
  inHandler?: boolean;
  /**
   * Runs once, not per call of its function: in a memoised function or under a cache guard
   * (`isMemoisedCall`). What it reaches costs the function's callers nothing per call.
   */
  memoised?: boolean;
  /**
   * The call's value is handed on, not used here: an argument of a call that is not a builtin
   * consuming an iterable (`StreamingResponse(chunks())`), or returned. A generator function
   * called so runs its body where it is iterated, not here.
   */
  handedOn?: boolean;
  /**
   * Its coroutine is started as a task of its own (`asyncio.create_task(f())`, `tg.start_soon(f)`
   * … of the call itself): the function goes on without waiting for it.
   */
  spawned?: boolean;
  /** Runs only under this flag guard of its function (`name@position`, see semantic/guards.ts). */
  guard?: string;
  /** What the call passes, to tell which flags of the callee it leaves off (see `passedArguments`). */
  passes?: string;
  /**
   * A call of what a lookup by a literal name returns (`get_handler('order_save')(ctx, data)`):
   * the lookup function's qualified name and the name looked up. The repo phase resolves it to
   * the function of that name in the caller's module or package when the lookup is a repo function.
   */
  named?: [string, string];
}

export interface SummaryFunction {
  name: string;
  qualifiedName: string;
  isAsync: boolean;
  role: FunctionRole;
  /** The role inherited from enclosing functions and the file's location (see `effectiveRole`). */
  effectiveRole: FunctionRole;
  isGenerator: boolean;
  routeKind: string | null;
  className: string | null;
  parent: number;
  startLine: number;
  endLine: number;
  effects: Effect[];
  /** Type path of what calling it gives (annotation, yielded value, first returned value). */
  returns: string | null;
  /** `FN_PROPERTY`, `FN_CLASSMETHOD`, … (objects.ts). */
  flags: number;
  /** Parameters it calls or hands on: `[position after self/cls, name, use]`. */
  paramUses: [number, string, ParamUse][];
}

export interface FileSummary {
  path: string;
  moduleName: string;
  isTestFile: boolean;
  imports: [string, string][];
  moduleDefs: string[];
  functions: SummaryFunction[];
  calls: SummaryCall[];
  suppressions: [number, string[]][];
  /** Module-level names whose values other files use (session factories, providers), as type paths. */
  exportedTypes: [string, string][];
  /** What the file starts outside requests: `[kind, qualified name]` (see `FileModel.entryPoints`). */
  entryPoints: [EntryPoint['kind'], string][];
  classes: SummaryClass[];
  /** Functions and bound methods passed as values. */
  refs: SummaryRef[];
  /**
   * Module-level names bound once, to a literal of at most ten items (`DEFAULTS = [...]`): a loop
   * over one, from another module, runs a handful of times (see `CallGraph.smallConstant`).
   */
  smallConstants: string[];
  /**
   * FastAPI routers mounted with dependencies: `[router, dependency]`, or `[router, '@' + the
   * router or application including it]` (see semantic/routerIncludes.ts). Optional in old caches.
   */
  routerIncludes?: RouterInclude[];
  /**
   * Names of other modules this one changes (`KNOWN.extend(...)`, `OWNERS[k] = v`,
   * `config.LIMITS = [...]`, `Config.KINDS = ...`), qualified: none of them is a constant,
   * whatever its module binds it to. Absent when none (and in old caches).
   */
  mutatedImports?: string[];
  /** `FileModel.scriptCode`; absent when none (and in old caches). */
  scriptCode?: [number, number, string][];
  /**
   * Module-level list serializers other modules may import (`users_schema = UserSchema(many=True)`):
   * `[name, qualified schema class, dump kind]` (see semantic/schemas.ts `schemaInstances`).
   * Absent when none (and in old caches).
   */
  schemaInstances?: [string, string, string][];
}

/** Everything the repo phase knows: every file's summary. */
export interface RepoIndex {
  files: FileSummary[];
}

const NO_SITE_KINDS: ReadonlySet<string> = new Set();

/**
 * Summarises a file for the repo phase; `effects[i]` are the effects found in function i.
 * `siteKinds`: kinds of effect that stand for a call site (`siteKindsOf` the collectors): the
 * repo phase looks their calls up by position, so those calls are kept.
 */
export function summarize(model: FileModel, effects: Effect[][], repoModules?: ReadonlySet<string>, siteKinds: ReadonlySet<string> = NO_SITE_KINDS): FileSummary {
  if (model.isTestFile) effects = [];
  const own = model.moduleName.split('.')[0]!;
  const isRepo = (t: string) => {
    const head = typePathHead(t);
    return !repoModules || head === own || repoModules.has(head);
  };
  const objects = objectFacts(model, isRepo);
  const keep = repoModules ? keptCalls(model, effects, repoModules, siteKinds) : null;
  const calls: SummaryCall[] = [];
  for (const c of model.calls) {
    // A call in a lambda stored to run later does not run when its function does: no edge.
    if (c.deferred) continue;
    // A call the graph resolves by name (a function, `self.m()`) needs no receiver type.
    const kept = !keep || keep(c);
    let receiverType = c.functionIndex >= 0 && !(kept && (c.qualifiedName !== null || LOCAL_CALLEE.test(c.calleeText))) ? objects.receiverTypeOf(c) : null;
    // A method call on a value nothing types: the repo phase may resolve it by its name alone.
    if (receiverType === null && !kept && c.functionIndex >= 0 && c.qualifiedName === null && objects.untypedCandidate(c)) receiverType = UNTYPED;
    if (!kept && receiverType === null) continue;
    const named = namedLookup(model, c);
    const repoCall = c.functionIndex >= 0 && (mayBeRepoCall(c) || receiverType !== null || named !== null);
    // One trip into the parser for both ends' coordinates.
    const end = c.node.endPosition;
    calls.push({
      calleeText: c.calleeText,
      qualifiedName: c.qualifiedName,
      method: c.method,
      functionIndex: c.functionIndex,
      line: c.line,
      column: c.column,
      endLine: end.row + 1,
      endColumn: end.column + 1,
      // `awaited` and `isWithItem` cost a parent lookup; only calls that may name a repo function need them.
      awaited: repoCall ? c.awaited : false,
      offloaded: c.offloaded,
      inLoop: c.loops.length > 0,
      receiverType,
      withItem: repoCall && c.isWithItem,
      ...(repoCall && conditionalCall(model, c) ? { conditional: true, ...(c.loops.length && inExceptHandler(c.node, model.functions[c.functionIndex]!.node) ? { inHandler: true } : {}) } : {}),
      ...(repoCall && isMemoisedCall(model, c) ? { memoised: true } : {}),
      ...(repoCall && valueHandedOn(c.node) ? { handedOn: true } : {}),
      ...(repoCall && spawnedTask(c.node) ? { spawned: true } : {}),
      ...(repoCall ? flagFacts(model, c) : {}),
      ...(named ? { named } : {}),
    });
  }
  const changed = changedNames(model);
  return {
    path: model.path,
    moduleName: model.moduleName,
    isTestFile: model.isTestFile,
    imports: [...model.imports],
    moduleDefs: [...model.moduleDefs],
    functions: model.functions.map((f, i) => ({
      name: f.name,
      qualifiedName: f.qualifiedName,
      isAsync: f.isAsync,
      role: f.role,
      effectiveRole: effectiveRole(model, i),
      isGenerator: f.isGenerator,
      routeKind: f.routeKind,
      className: f.className,
      parent: f.parent,
      startLine: f.startLine,
      endLine: f.endLine,
      effects: effects[i] ?? [],
      returns: objects.functions[i]!.returns,
      flags: objects.functions[i]!.flags | (f.role === 'handler' && adminOnly(model, i) ? FN_ADMIN : 0),
      paramUses: objects.functions[i]!.paramUses,
    })),
    calls,
    exportedTypes: exportedTypes(model, (t) => classifyHandle(t) !== null || isRepo(t) || isBlockingClientType(t) || isNetworkClientType(t)),
    suppressions: [...model.suppressions].map(([line, codes]) => [line, [...codes]]),
    entryPoints: model.entryPoints.map((e) => [e.kind, e.name]),
    classes: objects.classes,
    refs: objects.refs,
    smallConstants: smallConstants(model, changed),
    ...(model.source.includes('include_router') ? { routerIncludes: routerIncludes(model) } : {}),
    ...mutatedImportsField(model, changed),
    ...(model.scriptCode.length ? { scriptCode: model.scriptCode } : {}),
    ...schemaInstancesField(model),
  };
}

/**
 * The names (as written, dotted or not) the module changes in place or through an attribute:
 * `X.append(...)` and the other growing methods, `X += ...`, `X[k] = v`, `mod.X = ...`.
 */
function changedNames(model: FileModel): Set<string> {
  const out = new Set<string>();
  for (const c of model.calls) if (c.dottedReceiver && GROWS.test(c.method)) out.add(c.dottedReceiver);
  for (const a of model.augAssignments) out.add(a.target);
  for (const a of model.assignments) if (a.target.includes('.')) out.add(a.target);
  for (const m of model.source.matchAll(/(?<![\w.])([A-Za-z_][\w.]*)\s*\[[^\]\n]*\]\s*=(?!=)/g)) out.add(m[1]!);
  return out;
}

/** See {@link FileSummary.mutatedImports}. */
function mutatedImportsField(model: FileModel, changed: Set<string>): { mutatedImports?: string[] } {
  if (!model.imports.size) return {};
  const out = new Set<string>();
  for (const dotted of changed) {
    if (!model.imports.has(dotted.split('.')[0]!)) continue;
    const q = resolveName(model, dotted);
    if (q && q.includes('.')) out.add(q);
  }
  return out.size ? { mutatedImports: [...out].sort() } : {};
}

/** See {@link FileSummary.schemaInstances}: the field, when the module makes any. */
function schemaInstancesField(model: FileModel): { schemaInstances?: [string, string, string][] } {
  const found = schemaInstances(model);
  return found.length ? { schemaInstances: found } : {};
}

/** See {@link FileSummary.smallConstants}. */
function smallConstants(model: FileModel, changed: Set<string>): string[] {
  const out: string[] = [];
  for (const name of model.moduleDefs) {
    const bindings = assignmentsTo(model, name);
    if (bindings.length !== 1 || bindings[0]!.functionIndex >= 0) continue;
    let v = bindings[0]!.value;
    while (v?.type === 'parenthesized_expression') v = v.namedChild(0);
    if (!smallLiteral(v)) continue;
    // Grown by the module itself (`EXTRA.append(...)`, `EXTRA += [...]`, in a registration
    // function too), or filled by key (`EXTRA["k"] = v`): not a constant.
    if (changed.has(name)) continue;
    out.push(name);
  }
  // A function of the module that takes nothing and only returns one (`def roles(): return [...]`):
  // `for r in roles():` elsewhere. And a class's attribute bound once in its body to one
  // (`class Config: DEFAULT_ROLES = [...]`), never grown in the module: `Config.DEFAULT_ROLES`.
  for (const fn of model.functions) {
    if (fn.parent < 0 && !fn.className && model.moduleDefs.has(fn.name) && returnsSmallLiteral(fn)) out.push(fn.name);
  }
  if (model.classes.length) {
    for (const a of model.assignments) {
      if (a.functionIndex >= 0 || a.loops.length || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
      const cls = a.node.parent?.type === 'expression_statement' && a.node.parent.parent?.type === 'block' ? a.node.parent.parent.parent : null;
      const name = cls?.type === 'class_definition' ? cls.childForFieldName('name')?.text : undefined;
      if (!name || cls!.parent?.type !== 'module' && cls!.parent?.type !== 'decorated_definition') continue;
      let v = a.value;
      while (v?.type === 'parenthesized_expression') v = v.namedChild(0);
      if (!smallLiteral(v)) continue;
      // Bound once in the body, and neither grown nor rebound through the class or its instances
      // (`Cls.ATTR.append(...)`, `self.ATTR = ...`, `obj.ATTR[k] = v`).
      if (model.assignments.some((b) => b !== a && b.target === a.target && b.functionIndex < 0 && b.node.parent?.parent?.id === a.node.parent?.parent?.id)) continue;
      if ([...changed].some((d) => d.endsWith(`.${a.target}`))) continue;
      out.push(`${name}.${a.target}`);
    }
  }
  return out;
}

const SIMPLE_DOTTED = /^[A-Za-z_][\w.]*$/;
/** A new engine built in the function's own body (PA407 reports where it is built). */
export const NEW_ENGINE = 'new_engine';
/** A call a loop site or an argument fact names by position, for the repo phase (`encodeDomain`: `|c12:5`, `,c12:5`, a keyword's `;name=c12:5`). */
const ITERATED_CALL = /(?:^|[|,;=])c(\d+):(\d+)(?=$|[,|;])/g;
/** The callee forms the call graph resolves without a qualified name (see `resolveCall` in callgraph.ts). */
const LOCAL_CALLEE = /^(?:(?:self|cls)\.)?[A-Za-z_]\w*$/;


/**
 * Which calls the repo phase can use: those that may name a function of this repo (the call
 * graph's edges) and those it looks up by an effect's position. The rest — `session.execute`,
 * `json.dumps`, `str()` — are most calls of a file and most of a summary's size, so a
 * monorepo's summaries would not fit in memory with them. (Every query or write effect's call
 * was kept until the repo phase was found to never look them up: 245k of the 354k calls kept on
 * a generated 2M-line tree.)
 */
function keptCalls(model: FileModel, effects: Effect[][], repoModules: ReadonlySet<string>, siteKinds: ReadonlySet<string>): (c: CallInfo) => boolean {
  const sites = new Set<string>();
  for (const list of effects) {
    for (const e of list) {
      if (e.pending || siteKinds.has(e.kind)) sites.add(`${e.line}:${e.column}`);
      // Effects may name a second call of the file (`passes_loaded_id` carries its loader's position).
      if (e.what.startsWith('{')) {
        const source = /"source":\[(\d+),(\d+)\]/.exec(e.what);
        if (source) sites.add(`${source[1]}:${source[2]}`);
      }
      // A loop site names the call its loop iterates over, an argument fact the calls it passes (`c<line>:<column>`, see semantic/loopDomain.ts).
      if (e.what.includes('c')) for (const m of e.what.matchAll(ITERATED_CALL)) sites.add(`${m[1]}:${m[2]}`);
    }
  }
  return (c) => {
    if (sites.has(`${c.line}:${c.column}`)) return true;
    if (c.functionIndex < 0) return false;
    const named = NAMED_LOOKUP.test(c.calleeText) ? namedLookup(model, c) : null;
    if (named) return repoModules.has(named[0].split('.')[0]!);
    if (!mayBeRepoCall(c)) return false;
    const q = c.qualifiedName;
    // Without a qualified name the call graph resolves only `self.m()` / `cls.m()` and a bare
    // name (a nested def): `self.session.execute()`, `repo.get()` can never be an edge. On a
    // generated 2M-line tree those were 3 in 4 of the calls kept, for 4.8k edges in all.
    if (q === null) return LOCAL_CALLEE.test(c.calleeText);
    // Resolved through an import of a module that is nowhere in the tree: not ours.
    return inTreeModule(repoModules, q);
  };
}

/** Every directory and module name of the tree's Python files: the heads a repo import can start with. */
export function repoModuleNames(paths: Iterable<string>): string[] {
  const names = new Set<string>();
  for (const p of paths) for (const part of p.replace(/\.pyi?$/, '').split('/')) names.add(part);
  return [...names].sort();
}

/** The call's flag guard and what it passes (for the callee's guards). */
function flagFacts(model: FileModel, c: CallInfo): { guard?: string; passes: string } {
  const guard = c.functionIndex >= 0 ? flagGuard(model, c.node, c.functionIndex) : null;
  // A name the function sets to `None` or to a lookup that may miss (`cached = cache.get(k)`) may be `None` when passed.
  const maybeNone = (name: string) => assignmentsTo(model, name).some((a) => a.functionIndex === c.functionIndex && !!a.value && isMaybeNone(a.value.text));
  let passes = c.emptyArgs ? '|' : passedArguments(c.node, model.source, c.argsOffset, (name) => ownFlag(model, c.functionIndex, name), maybeNone, ownKwargs(model, c.functionIndex));
  // The dict keys the calling function sets (`fresh(ctx, defer_commit=True)`): a callee's branch
  // under `if not ctx.get('defer_commit'):` may be off for this call.
  const keys = c.emptyArgs ? null : dictKeysSet(model, c.functionIndex);
  if (keys) passes += `|#${keys.join(',')}`;
  // Dict literals passed (`user_show(ctx, {'id': uid})`): a callee's branch under
  // `if data_dict.get('include_datasets'):` is off for a literal without the key.
  const literals = c.emptyArgs ? null : dictLiteralKeys(model, c);
  if (literals) passes += `|{${literals}`;
  return guard ? { guard, passes } : { passes };
}

/**
 * The string keys of the dict literals a call passes, by position or keyword: `0=id,name;opts=k`.
 * Null when it passes none, and a literal that unpacks another dict (`{**base, 'k': 1}`) or has a
 * computed key is left out: it may hold any key.
 */
function dictLiteralKeys(model: FileModel, c: CallInfo): string | null {
  // From the text first when the call's `(` is known (most calls pass no dict literal).
  if (c.argsOffset >= 0 && !model.source.slice(c.argsOffset, c.node.endIndex).includes('{')) return null;
  const list = c.node.childForFieldName('arguments');
  if (!list || (c.argsOffset < 0 && !list.text.includes('{'))) return null;
  const out: string[] = [];
  // Positions count positional arguments only; after a `*xs` none can be placed.
  let position = 0;
  let placed = true;
  for (const a of list.namedChildren) {
    if (a.type === 'comment' || a.type === 'line_continuation') continue;
    if (a.type === 'list_splat' || a.type === 'dictionary_splat') {
      placed = false;
      continue;
    }
    const keyword = a.type === 'keyword_argument' ? a.childForFieldName('name')?.text ?? null : null;
    const slot = keyword ?? (placed ? String(position) : null);
    if (keyword === null) position++;
    const value = keyword !== null ? a.childForFieldName('value') : a;
    if (value?.type !== 'dictionary' || slot === null) continue;
    const keys: string[] = [];
    let literal = true;
    for (const item of value.namedChildren) {
      if (item.type === 'comment' || item.type === 'line_continuation') continue;
      const k = item.type === 'pair' ? item.childForFieldName('key') : null;
      const m = k?.type === 'string' ? /^[uU]?(['"])(\w+)\1$/.exec(k.text) : null;
      if (!m) {
        literal = false;
        break;
      }
      keys.push(m[2]!);
    }
    if (literal) out.push(`${slot}=${keys.join(',')}`);
  }
  return out.length ? out.join(';') : null;
}

/** Does the call run only sometimes when its function runs (a condition, a handler, a loop)? */
function conditionalCall(model: FileModel, c: CallInfo): boolean {
  return c.loops.length > 0 || conditionalInFunction(model, c);
}

/**
 * `get_handler('order_save')(...)`: the lookup's qualified name (through a module-level alias
 * `_get = registry.get_handler`) and the name it looks up; null for any other callee.
 */
function namedLookup(model: FileModel, c: CallInfo): [string, string] | null {
  const m = NAMED_LOOKUP.exec(c.calleeText);
  if (!m) return null;
  let via = m[1]!;
  if (!via.includes('.')) {
    const bound = assignmentsTo(model, via).filter((a) => a.functionIndex < 0 && a.target === via);
    const v = bound.length === 1 ? bound[0]!.value : null;
    if (v && (v.type === 'attribute' || v.type === 'identifier') && SIMPLE_DOTTED.test(v.text)) via = v.text;
  }
  const q = resolveName(model, via);
  return q && !q.startsWith('builtins.') ? [q, m[3]!] : null;
}

export function mayBeRepoCall(c: { calleeText: string; qualifiedName: string | null }): boolean {
  return SIMPLE_DOTTED.test(c.calleeText) && !c.qualifiedName?.startsWith('builtins.');
}


/** Builtins and methods that iterate what they are given, there and then. */
const CONSUMERS = /^(list|tuple|set|frozenset|dict|sorted|sum|any|all|min|max|next|enumerate|zip|map|filter|reversed|iter|len|bytes|bytearray|str|print)$|\.(join|extend|update|writelines|write|sendall|send)$/;

/** See `SummaryCall.handedOn`. */
function valueHandedOn(node: SyntaxNode): boolean {
  let p = node.parent;
  while (p?.type === 'parenthesized_expression') p = p.parent;
  if (p?.type === 'keyword_argument') p = p.parent;
  if (p?.type === 'return_statement') return true;
  if (p?.type !== 'argument_list') return false;
  const callee = p.parent?.childForFieldName('function')?.text ?? '';
  return !CONSUMERS.test(callee);
}
