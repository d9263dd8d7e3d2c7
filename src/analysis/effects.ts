/**
 * Effects of each function that callers care about (blocking, sleeping, sync DB, CPU work, a
 * new engine),
 * found in the per-file phase so the repo phase can propagate them along call edges. Each
 * effect is classified by the same function the matching file rule uses, so a helper "blocks"
 * exactly when its body would be flagged inside `async def`.
 */
import type { ProjectContext } from '../discovery/context.js';
import type { CallInfo, FileModel, LoopInfo } from '../semantic/model.js';
import type { SyntaxNode } from '../parse/parser.js';
import { assignmentsTo, resolveImported, resolveName } from '../semantic/model.js';
import { isMemoisedCall } from '../semantic/memo.js';
import { BLOCKING_MODULES } from '../semantic/blockingModules.js';
import { NEW_ENGINE, type Effect } from './summary.js';
import { blockingFunctionName, blockingIoCall, BUNDLED_FILE, isCheapMetadata, isSingleFileOp, pendingBlockingMethod, readsBundledFile, runsChildProcess, shortSleep, SYNC_SLEEP } from '../semantic/blockingIo.js';
import { syncDbCall } from '../semantic/syncDb.js';
import { spawnedTask, TASK_SPAWNER } from '../semantic/externalCalls.js';
import { cpuHeavyCall } from '../semantic/cpuHeavy.js';
import { isEngineConstructor } from '../semantic/resources.js';
import { iterationSource } from '../semantic/smallLiterals.js';

/**
 * What a rule family adds to the summary: effects of each function's own body that its repo
 * rules follow through calls, and site facts. The rules hand their collectors to the engine,
 * which passes them here: the analysis layer never imports a rule.
 */
/** Effect kind of a call that runs a child process and waits for it (`subprocess.run`, `os.system`). */
export const CHILD_PROCESS_EFFECT = 'child_process';

/**
 * Beside each `blocking_io` effect that is more than metadata (`isCheapMetadata`, with the call's
 * arguments: `mkdir(exist_ok=True)` is metadata) or one read of a file shipped with the code: a
 * chain that reaches none of these does metadata operations only, `low` like the calls themselves.
 */
export const HEAVY_IO = 'heavy_io';
/** Blocking metadata operations (stat, exists, unlink, …) per item of a loop: light, but more than one. */
export const LOOPED_METADATA = 'looped_metadata';
/** A single-file operation (`isSingleFileOp`) per item of a loop: file work that adds up. */
export const LOOPED_FILE_IO = 'looped_file_io';
/** A blocking call that is neither a single-file operation nor a metadata one: network, a process, a tree. */
export const OTHER_BLOCKING = 'other_blocking';
/** `time.sleep` with a literal duration under 10 ms, once (`shortSleep`): a yield more than a wait. */
export const SHORT_SLEEP = 'short_sleep';
/** One read of a file shipped with the code: light once, heavy when a caller's loop repeats it. */
export const BUNDLED_READ = 'bundled_read';

/**
 * A site fact on a call in one loop whose iterable is a name imported from another module
 * (`for s in DEFAULT_SEVERITIES:`, also through `sorted(...)`/`.items()`): `what` is its qualified
 * name, for the repo phase to tell a handful of constants (`CallGraph.smallConstant`).
 */
export const IMPORTED_ITERABLE = 'imported_iterable';
/** A package whose modules the function imports by a computed name (`what`: `app.actions`); a site fact. */
export const REGISTRY_PACKAGE = 'registry_package';

/**
 * Is the function of this `import_module` call a lookup of functions by name: it returns an entry
 * of a mapping by one of its parameters (`return _actions[name]`, `return HANDLERS.get(name)`),
 * and the imported module is scanned, not used itself (not `import_module(...).run`, nor returned)?
 * A loader that picks a module by name and hands out one of its attributes is not one.
 */
function looksUpByName(model: FileModel, call: CallInfo): boolean {
  const p = call.node.parent;
  if (p?.type === 'attribute' || p?.type === 'return_statement') return false;
  const fn = model.functions[call.functionIndex]!;
  const body = fn.body ? model.source.slice(fn.body.startIndex, fn.body.endIndex) : '';
  // `mod = import_module(...)` used only for literal attributes (`mod.run`): one attribute of
  // one module, not its functions scanned (`getmembers(mod)`, `dir(mod)`, a helper given `mod`).
  if (p?.type === 'assignment' && p.childForFieldName('left')?.type === 'identifier') {
    const mod = p.childForFieldName('left')!.text;
    // A called attribute (`mod.register(_handlers)`) may fill the registry: only plain reads count against it.
    const uses = [...body.matchAll(new RegExp(`(?:^|[^\\w.])${mod}\\b(?!\\s*=[^=])(\\s*\\.\\s*(?!__dict__)[A-Za-z_]\\w*\\b(?!\\s*\\())?`, 'g'))];
    if (uses.length && uses.every((u) => u[1] !== undefined)) return false;
  }
  return fn.params.some((param) => {
    if (!/^[A-Za-z_]\w*$/.test(param.name)) return false;
    const entry = `[\\w.]+\\s*(?:\\[\\s*${param.name}\\s*\\]|\\.get\\(\\s*${param.name}\\b)`;
    if (new RegExp(`\\breturn\\s+${entry}`).test(body)) return true;
    // `fn = _handlers.get(name)` … `if fn is None: raise …` … `return fn`.
    for (const m of body.matchAll(new RegExp(`(?:^|\\n)\\s*([A-Za-z_]\\w*)\\s*=\\s*${entry}`, 'g'))) {
      if (new RegExp(`\\breturn\\s+${m[1]}\\s*(?:$|\\n|#)`).test(body)) return true;
    }
    return false;
  });
}

/**
 * The package of an `import_module` call whose module name is computed: `import_module('.' + x,
 * 'app.actions')` (relative, the package given), `import_module('app.actions.' + x)`,
 * `import_module(f'app.actions.{x}')`. Null for a literal module name or anything else.
 */
function importedPackage(call: SyntaxNode): string | null {
  const args = (call.childForFieldName('arguments')?.namedChildren ?? []).filter((a) => a.type !== 'comment');
  const first = args[0];
  if (!first) return null;
  const pkgArg = args.find((a) => a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'package')?.childForFieldName('value') ?? (args[1]?.type !== 'keyword_argument' ? args[1] : undefined);
  const literal = (n: SyntaxNode | null | undefined) => (n?.type === 'string' && !/^[rbuRBU]*[fF]/.test(n.text) ? /^[rbuRBU]*(['"])([\w.]*)\1$/.exec(n.text)?.[2] ?? null : null);
  let head: string | null = null;
  if (first.type === 'binary_operator' && first.childForFieldName('operator')?.text === '+') head = literal(first.childForFieldName('left'));
  else if (first.type === 'string' && /^[rR]?[fF]/.test(first.text)) head = /^[rR]?[fF](['"])([\w.]*)\{/.exec(first.text)?.[2] ?? null;
  if (head === null || !head.endsWith('.')) return null;
  if (head === '.') {
    const pkg = literal(pkgArg);
    return pkg && /^[A-Za-z_][\w.]*$/.test(pkg) ? pkg : null;
  }
  const pkg = head.slice(0, -1);
  return /^[A-Za-z_][\w.]*$/.test(pkg) ? pkg : null;
}

/**
 * A runtime switch turned off (`Locks.use_db = False`): `what` names it, `Cls.attr`. A caller
 * whose context runs this (itself, its class's `__init__`, or what they call) no longer takes the
 * branches under the switch (see `Flag.switch` in semantic/guards.ts).
 */
export const SWITCH_OFF = 'switch_off';
/** The same switch turned back on (`Locks.use_db = True`), on every run of the function. */
export const SWITCH_ON = 'switch_on';
const SWITCH_TARGET = /^[A-Z]\w*\.[A-Za-z_]\w*$/;

/** The qualified name of an imported name the loop iterates (`mod.NAME`, or `NAME` imported from `mod`), or null. */
function importedIterable(model: FileModel, loop: LoopInfo): string | null {
  const n = loop.kind === 'while' ? null : iterationSource(loop.iterable);
  if (!n) return null;
  // A name bound again here is not the import: a local, a parameter or an unpacked name of the
  // loop's function or of one enclosing it (a closure), or a module-level rebinding.
  const head = /^[A-Za-z_]\w*/.exec(n.text)?.[0];
  if (head) {
    if (model.moduleDefs.has(head)) return null;
    for (let i = loop.functionIndex; i >= 0; i = model.functions[i]!.parent) {
      const fn = model.functions[i]!;
      if (fn.params.some((p) => p.name === head) || assignmentsTo(model, head).some((a) => a.functionIndex === i)
        || model.unpackedAssignments.some((u) => u.functionIndex === i && u.names.includes(head))) return null;
    }
  }
  if (n.type === 'identifier') {
    const q = model.imports.get(n.text);
    return q && q.includes('.') ? q : null;
  }
  if (n.type === 'attribute') {
    // `kinds.SHELF_LABELS`, `Config.DEFAULT_ROLES`, `kinds.Catalogue.FEATURED`: through an import.
    const head = n.text.slice(0, n.text.search(/[^\w]|$/));
    const q = model.imports.has(head) ? resolveImported(model, n.text.replace(/\s+/g, '')) : null;
    return q && q.includes('.') ? q : null;
  }
  // `for r in default_roles():` — an imported function called with nothing (the repo phase knows
  // whether it only returns a handful of constants).
  if (n.type === 'call' && n.childForFieldName('arguments')?.namedChildCount === 0) {
    const fn = n.childForFieldName('function');
    if (fn?.type !== 'identifier' && fn?.type !== 'attribute') return null;
    const q = resolveImported(model, fn.text.replace(/\s+/g, ''));
    return q && q.includes('.') && !q.startsWith(`${model.moduleName}.`) ? q : null;
  }
  return null;
}

export interface EffectCollector {
  /** `[functionIndex]` → that function's own effects; `project` when the engine has one. */
  collect(model: FileModel, project?: ProjectContext): Effect[][];
  /** Kinds whose effects stand for one call site: the summary keeps that call for the repo phase. */
  siteKinds: readonly string[];
}

/**
 * The function starts one of its parameters as a task of its own and does not wait for it
 * (`def fire_and_forget(coro): loop.create_task(coro)`): `what` is the parameter's name. A
 * coroutine handed to it (`fire_and_forget(publish(event))`) runs beside the caller, not in it.
 */
export const SPAWNS_ARG = 'spawns_arg';

/** `pending.typePath` of a blocking callable handed to a call as positional argument N: `#arg` + N. */
export const HANDED_ARG = '#arg';

/** The first positional argument that names a blocking library function (`requests.head`), with its position. */
function handedBlockingCallable(model: FileModel, call: CallInfo): { what: string; position: number } | null {
  if (call.hasReceiver || call.emptyArgs) return null;
  // Most files import nothing a blocking function can be named through: no argument is read.
  const names = blockingNames(model);
  if (!names) return null;
  const close = call.node.endIndex;
  const inArgs = model.source.slice(call.argsOffset >= 0 ? call.argsOffset : call.node.startIndex, close);
  if (!names.test(inArgs)) return null;
  const args = call.node.childForFieldName('arguments')?.namedChildren ?? [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.type === 'keyword_argument' || a.type === 'list_splat' || a.type === 'dictionary_splat') break;
    // Only a name the file imports, or an attribute of one: `requests.head`, `head` after `from requests import head`.
    if (a.type !== 'identifier' && a.type !== 'attribute') continue;
    const text = a.text;
    const dot = text.indexOf('.');
    if (!model.imports.has(dot < 0 ? text : text.slice(0, dot))) continue;
    const q = resolveName(model, text);
    const what = q && BLOCKING_MODULES.test(q) ? blockingFunctionName(q) : null;
    if (what) return { what, position: i };
  }
  return null;
}
const blockingNamesMemo = new WeakMap<FileModel, RegExp | null>();
/** The names the file imports that can name a blocking function (`requests`, `rq`, `head`), as one regex; null when none. */
function blockingNames(model: FileModel): RegExp | null {
  let re = blockingNamesMemo.get(model);
  if (re === undefined) {
    const names: string[] = [];
    for (const [local, q] of model.imports) if (BLOCKING_MODULES.test(`${q}.`)) names.push(local);
    re = names.length ? new RegExp(`(^|[^\\w.])(${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})\\b`) : null;
    blockingNamesMemo.set(model, re);
  }
  return re;
}

/**
 * `for chunk in iter(lambda: f.read(4096), b"")`: the read in the lambda runs once per item of
 * the loop that iterates it (a whole file read in chunks).
 */
function readsInChunks(node: SyntaxNode): boolean {
  const lambda = node.parent?.type === 'lambda' ? node.parent : null;
  const call = lambda?.parent?.type === 'argument_list' ? lambda.parent.parent : null;
  if (call?.type !== 'call' || call.childForFieldName('function')?.text !== 'iter') return false;
  for (let p = call.parent; p; p = p.parent) {
    if (p.type === 'for_statement' || p.type === 'for_in_clause') return true;
    if (p.type.endsWith('_statement') || p.type === 'block') return false;
  }
  return false;
}

/** Does `node` run whenever the function whose body is `body` runs: no `if`, `try`, loop or `match` between them? */
function unconditionalIn(node: SyntaxNode, body: SyntaxNode): boolean {
  for (let p = node.parent; p && p.id !== body.id; p = p.parent) {
    if (/^(if_statement|elif_clause|else_clause|try_statement|except_clause|finally_clause|for_statement|while_statement|match_statement|case_clause|conditional_expression|boolean_operator|function_definition|lambda)$/.test(p.type)) return false;
  }
  return true;
}

/** The site kinds of these collectors, and the analysis layer's own (a new engine, a loop entry). */
export function siteKindsOf(collectors: readonly EffectCollector[]): ReadonlySet<string> {
  return new Set([...collectors.flatMap((c) => c.siteKinds), NEW_ENGINE, LOOP_ENTRY]);
}

/**
 * Site fact: a coroutine started on an event loop of its own by a sync function —
 * `asyncio.run(main())`, `loop.run_until_complete(job())`, `runner.run(self.run(...))` with
 * `runner` an `asyncio.Runner()` — at the inner call (`what` = the runner call's callee). A
 * coroutine only ever entered this way (a worker's task, a CLI command) shares its loop with
 * nothing else of the process (see `executionContexts`).
 */
export const LOOP_ENTRY = 'loop_entry';

/**
 * Site fact of a coroutine function: it is decorated by `what` (the decorator's qualified name,
 * imports resolved), at the function's first line. A project decorator whose wrapper runs the
 * coroutine it wraps on a loop of its own (`asyncio.run(fn(*args, **kwargs))`) makes every call
 * of the function a run on a private loop (see `executionContexts`).
 */
export const DECORATED_BY = 'decorated_by';

/** Decorators that never wrap a coroutine in a loop: the language's and the frameworks' common ones. */
const PLAIN_DECORATORS = /(^|\.)(property|cached_property|staticmethod|classmethod|abstractmethod|override|overload|wraps|lru_cache|cache|contextmanager|asynccontextmanager|get|post|put|patch|delete|route|api_route|websocket|on_event|middleware|exception_handler|fixture)$/;

/**
 * The function starts coroutines that run concurrently on its loop: `asyncio.gather`,
 * `create_task`, `ensure_future`, `asyncio.wait`/`as_completed`, a `TaskGroup`, anyio's
 * `start_soon`, a server (`asyncio.start_server`). Propagated along calls: a coroutine run on a
 * loop of its own that reaches one shares that loop with others (see `executionContexts`).
 */
export const SPAWNS = 'spawns';

const SPAWN_FUNCTIONS = /^(asyncio\.(gather|wait|as_completed|ensure_future|create_task|start_server|start_unix_server|TaskGroup)|anyio\.create_task_group|trio\.open_nursery|websockets\.(serve|server\.serve)|hypercorn\.asyncio\.serve|uvicorn\.Server|aiohttp\.web\.(TCPSite|UnixSite|SockSite|AppRunner|run_app|_run_app))$/;
/** Also servers and callbacks a loop runs beside the coroutine (`loop.create_server`, `loop.call_soon`). */
const SPAWN_METHODS = /^(create_task|start_soon|ensure_future|create_server|create_unix_server|call_soon|call_later|call_at|serve_forever|add_reader)$/;

function spawnsConcurrency(call: CallInfo): boolean {
  const q = call.qualifiedName;
  if (q && SPAWN_FUNCTIONS.test(q)) return true;
  return call.hasReceiver && SPAWN_METHODS.test(call.method);
}

/** Runner calls that start a loop for the coroutine they are handed. */
const RUNNER_CALLS = /^(asyncio\.run|asyncio\.runners\.run)$/;

function loopEntry(model: FileModel, call: CallInfo): Effect | null {
  if (model.functions[call.functionIndex]!.isAsync) return null;
  // Only a runner's call can enter a loop: told from its name, before the arguments are looked up
  // in the tree (for every call of every sync function).
  if (call.method !== 'run' && call.method !== 'run_until_complete' && (call.qualifiedName === null || !RUNNER_CALLS.test(call.qualifiedName))) return null;
  const args = call.node.childForFieldName('arguments');
  let first = args?.namedChildren.find((a) => a.type !== 'comment');
  if (first?.type !== 'call') return null;
  // `run_until_complete(asyncio.wait([listen()]))`, with the list written out or bound once to a
  // local: one coroutine alone on the loop, as if handed directly.
  const lone = loneCoroutine(model, call, first);
  if (lone) first = lone;
  let runner = call.qualifiedName !== null && RUNNER_CALLS.test(call.qualifiedName);
  if (!runner && call.method === 'run_until_complete' && call.hasReceiver) runner = true;
  if (!runner && call.method === 'run' && call.receiver?.type === 'identifier') runner = boundToRunner(model, call, call.receiver.text);
  if (!runner) return null;
  return { kind: LOOP_ENTRY, what: call.calleeText, line: first.startPosition.row + 1, column: first.startPosition.column + 1 };
}

/** Is `call` the `asyncio.wait([c])` / `gather(c)` a runner is handed (`run_until_complete(asyncio.wait([c]))`), with one coroutine? */
function handsLoneCoroutine(model: FileModel, call: CallInfo): boolean {
  const outer = call.node.parent?.parent;
  if (call.node.parent?.type !== 'argument_list' || outer?.type !== 'call' || call.functionIndex < 0 || model.functions[call.functionIndex]!.isAsync) return false;
  const runner = outer.childForFieldName('function')?.text ?? '';
  return /(^|\.)(run_until_complete|run)$/.test(runner) && loneCoroutine(model, call, call.node) !== null;
}

/** The one coroutine call of `asyncio.wait([c])` / `asyncio.gather(c)` (a list literal, or a local bound once to one), else null. */
function loneCoroutine(model: FileModel, call: CallInfo, arg: SyntaxNode): SyntaxNode | null {
  const fn = arg.childForFieldName('function')?.text ?? '';
  if (!/^(asyncio\.)?(wait|gather)$/.test(fn) || (!fn.startsWith('asyncio.') && resolveName(model, fn)?.startsWith('asyncio.') !== true)) return null;
  const inner = (arg.childForFieldName('arguments')?.namedChildren ?? []).filter((a) => a.type !== 'comment');
  if (inner.length !== 1) return null;
  let list: SyntaxNode | null = inner[0]!;
  if (/gather$/.test(fn)) return list.type === 'call' ? list : null;
  if (list.type === 'identifier') {
    const own = assignmentsTo(model, list.text).filter((a) => a.functionIndex === call.functionIndex);
    list = own.length === 1 ? own[0]!.value : null;
  }
  const items = list?.type === 'list' ? list.namedChildren.filter((c) => c.type !== 'comment') : [];
  return items.length === 1 && items[0]!.type === 'call' ? items[0]! : null;
}

/** Is `name` an `asyncio.Runner()` in the call's function: `with asyncio.Runner() as name:` or `name = asyncio.Runner()`? */
function boundToRunner(model: FileModel, call: CallInfo, name: string): boolean {
  const isRunner = (n: SyntaxNode | null | undefined) => {
    const f = n?.type === 'call' ? n.childForFieldName('function')?.text : null;
    return !!f && resolveName(model, f) === 'asyncio.Runner';
  };
  for (const wi of call.withs) {
    const w = model.withs[wi]!;
    if (w.functionIndex === call.functionIndex && w.items.some((i) => i.alias === name && isRunner(i.value))) return true;
  }
  return assignmentsTo(model, name).some((a) => a.functionIndex === call.functionIndex && a.line <= call.line && isRunner(a.value));
}

/**
 * `create_engine(url, poolclass=NullPool)`: the keyword's value is SQLAlchemy's `NullPool` (by
 * import: `NullPool`, `pool.NullPool`, an alias), not a choice made at run time
 * (`NullPool if testing else QueuePool`); and not built per item of a loop, where the engines
 * themselves pile up.
 */
function withNullPool(model: FileModel, call: CallInfo): boolean {
  if (call.loops.length) return false;
  const args = call.node.childForFieldName('arguments')?.namedChildren ?? [];
  const kw = args.find((a) => a.type === 'keyword_argument' && a.childForFieldName('name')?.text === 'poolclass');
  const v = kw?.childForFieldName('value');
  if (!v || (v.type !== 'identifier' && v.type !== 'attribute')) return false;
  const q = resolveName(model, v.text.replace(/\s+/g, ''));
  return !!q && /^sqlalchemy(\.pool)?(\.impl)?\.NullPool$/.test(q);
}

/** `effects[i]` lists the effects of `model.functions[i]`' own body: the catalogue's, then each collector's. */
export function collectEffects(model: FileModel, collectors: readonly EffectCollector[] = [], project?: ProjectContext): Effect[][] {
  const effects: Effect[][] = model.functions.map(() => []);
  if (model.isTestFile) return effects;
  model.functions.forEach((fn, i) => {
    if (!fn.isAsync) return;
    for (const d of fn.decoratorNames) if (!PLAIN_DECORATORS.test(d)) effects[i]!.push({ kind: DECORATED_BY, what: d, line: fn.startLine, column: 1 });
  });
  for (const call of model.calls) {
    if (call.functionIndex < 0 || call.offloaded || call.deferred) continue;
    const at = { line: call.line, column: call.column };
    const q = call.qualifiedName;
    // Work that runs once (a memoised function, a cache being filled) costs a caller nothing per call.
    const push = (e: Effect) => {
      if (!isMemoisedCall(model, call)) effects[call.functionIndex]!.push(e);
    };
    // `asyncio.run(main())` in a sync function: `main` runs on a loop of its own (site fact at the inner call).
    const entered = loopEntry(model, call);
    if (entered) effects[call.functionIndex]!.push(entered);
    // Coroutines started side by side on the loop: a loop of its own is then shared by them.
    // (Not `asyncio.wait([c])` handed to the runner with its one coroutine: that starts it alone.)
    if (spawnsConcurrency(call) && !handsLoneCoroutine(model, call)) effects[call.functionIndex]!.push({ kind: SPAWNS, what: call.calleeText, ...at });
    // A new engine (a new pool) each time the function runs, unless the function or a cache guard keeps it.
    if (isEngineConstructor(q)) {
      // ` (SQLite)`: a file opened, no server connection (PA407 says so and claims less). The URL
      // scheme is discovery's (`EngineInfo.urlScheme`, literals and constants resolved there).
      const scheme = project?.engines.find((e) => e.file === model.path && e.line === call.line)?.urlScheme;
      // ` (NullPool)`: no pool is built or thrown away, only the engine (PA407 claims less).
      const nullPool = withNullPool(model, call) ? ' (NullPool)' : '';
      push({ kind: NEW_ENGINE, what: `${q!}${nullPool}${scheme?.startsWith('sqlite') ? ' (SQLite)' : ''}`, ...at });
      continue;
    }
    if (q && SYNC_SLEEP.has(q)) {
      // A sleep of a millisecond is its own kind: low on the event loop, nothing in a transaction.
      if (!call.awaited) push({ kind: shortSleep(call) !== undefined ? SHORT_SLEEP : 'sync_sleep', what: q, ...at });
      continue;
    }
    const io = blockingIoCall(model, call);
    if (io) {
      // A read of a file shipped with the code: small, and in the page cache after the first read.
      const bundled = readsBundledFile(model, call);
      push({ kind: 'blocking_io', what: bundled ? io + BUNDLED_FILE : io, ...at });
      // Metadata operations stay light in a loop (microseconds each); a loop of them is
      // `LOOPED_METADATA`, not heavy. A bundled file read per item is heavy.
      const metadata = isCheapMetadata(io, call);
      if (bundled ? call.loops.length > 0 : !metadata) push({ kind: HEAVY_IO, what: io, ...at });
      else if (metadata && call.loops.length) push({ kind: LOOPED_METADATA, what: io, ...at });
      else if (bundled) push({ kind: BUNDLED_READ, what: io, ...at });
      // What PA301 rates `medium` is one local file, once: anything else blocking is
      // `OTHER_BLOCKING` (network, a process, a tree), file work per item `LOOPED_FILE_IO`.
      if (!metadata) {
        if (!bundled && !isSingleFileOp(io)) push({ kind: OTHER_BLOCKING, what: io, ...at });
        else if (call.loops.length || readsInChunks(call.node)) push({ kind: LOOPED_FILE_IO, what: io, ...at });
      }
      // A child process is also a wait of its own kind: a transaction open around it waits for it.
      if (runsChildProcess(io)) push({ kind: CHILD_PROCESS_EFFECT, what: io, ...at });
      continue;
    }
    // Decided in the repo phase, which knows the type; the same call may still be a DB call.
    const typedElsewhere = pendingBlockingMethod(model, call);
    if (typedElsewhere) {
      // All three wait for the repo phase: most such calls turn out not to block at all.
      push({ kind: 'blocking_io', what: typedElsewhere.method, ...at, pending: typedElsewhere });
      push({ kind: HEAVY_IO, what: typedElsewhere.method, ...at, pending: typedElsewhere });
      push({ kind: OTHER_BLOCKING, what: typedElsewhere.method, ...at, pending: typedElsewhere });
    }
    const db = syncDbCall(model, call);
    if (db) {
      push('what' in db ? { kind: 'sync_db', what: db.what, ...at } : { kind: 'sync_db', what: db.pending.method, ...at, pending: db.pending });
      continue;
    }
    const cpu = cpuHeavyCall(model, call);
    if (cpu) push({ kind: 'cpu', what: cpu, ...at });
    // `timed(requests.head, url)`: a blocking library function handed to another function, which
    // the repo phase decides (blocking here when the callee calls that parameter itself).
    const handed = !call.awaited && handedBlockingCallable(model, call);
    if (handed) {
      push({ kind: 'blocking_io', what: handed.what, ...at, pending: { typePath: `${HANDED_ARG}${handed.position}`, method: handed.what } });
      push({ kind: HEAVY_IO, what: handed.what, ...at });
      push({ kind: OTHER_BLOCKING, what: handed.what, ...at });
    }
  }
  // A parameter started as a task nobody here waits for.
  if (/create_task|ensure_future|start_soon|run_coroutine_threadsafe/.test(model.source)) {
    for (const call of model.calls) {
      if (call.functionIndex < 0 || !TASK_SPAWNER.test(call.method)) continue;
      const first = call.node.childForFieldName('arguments')?.namedChildren[0];
      if (first?.type !== 'identifier' || !model.functions[call.functionIndex]!.params.some((p) => p.name === first.text)) continue;
      if (spawnedTask(first)) effects[call.functionIndex]!.push({ kind: SPAWNS_ARG, what: first.text, line: call.line, column: call.column });
    }
  }
  // A switch turned off (or back on) on every run of the function: not under a condition, in a
  // handler or a loop.
  for (const a of model.assignments) {
    if (a.functionIndex < 0 || !SWITCH_TARGET.test(a.target)) continue;
    const v = a.value?.text;
    if (v !== 'False' && v !== 'None' && v !== 'True') continue;
    const body = model.functions[a.functionIndex]!.body;
    if (!body || !unconditionalIn(a.node, body)) continue;
    effects[a.functionIndex]!.push({ kind: v === 'True' ? SWITCH_ON : SWITCH_OFF, what: a.target, line: a.line, column: a.node.startPosition.column });
  }
  // A registry that imports the modules of a package and hands out their functions by name
  // (`importlib.import_module('.' + part, 'app.actions')`): the repo phase resolves its lookups there.
  if (model.source.includes('import_module')) {
    for (const call of model.calls) {
      if (call.functionIndex < 0 || (call.qualifiedName !== 'importlib.import_module' && call.calleeText !== 'import_module')) continue;
      const pkg = importedPackage(call.node);
      if (pkg && looksUpByName(model, call)) effects[call.functionIndex]!.push({ kind: REGISTRY_PACKAGE, what: pkg, line: call.line, column: call.column });
    }
  }
  // Calls in one loop over an imported name: the repo phase tells whether it is a handful of constants.
  if (model.imports.size) {
    const byLoop = new Map<number, string | null>();
    for (const call of model.calls) {
      if (call.functionIndex < 0 || call.loops.length !== 1) continue;
      const li = call.loops[0]!;
      let q = byLoop.get(li);
      if (q === undefined) byLoop.set(li, (q = importedIterable(model, model.loops[li]!)));
      if (q) effects[call.functionIndex]!.push({ kind: IMPORTED_ITERABLE, what: q, line: call.line, column: call.column });
    }
  }
  // Query family: `query` / `write` effects and per-item loop call sites (see dbCalls.ts).
  // A call in a lambda stored to run later (`[lambda: Cleaner()]`) is not work of its function:
  // no collector's effect at its position either.
  let deferred: Set<string> | null = null;
  for (const c of model.calls) if (c.deferred) (deferred ??= new Set()).add(`${c.line}:${c.column}`);
  for (const c of collectors) {
    c.collect(model, project).forEach((list, i) => {
      for (const e of list) if (!deferred || !deferred.has(`${e.line}:${e.column}`)) effects[i]!.push(e);
    });
  }
  return effects;
}
