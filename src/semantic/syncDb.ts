/**
 * Synchronous database calls: methods of a sync SQLAlchemy `Session` / `Connection` / `Engine`,
 * DB-API drivers (`psycopg2`, `pymysql`, `sqlite3`, …) and a sync `redis` client, decided from
 * the receiver's type path (`db.ts`); a path into another module is left pending for the repo
 * phase.
 */
import type { CallInfo, FileModel } from './model.js';
import { isOffloadCallee, variableRefs } from './model.js';
import type { SyntaxNode } from '../parse/parser.js';
import { receiverType, ownModuleLookup } from './valueTypes.js';
import {
  blockingDbFunction, handleMethodLabel, isBlockingDbMethod, mayBeBlockingDbMethod, resolveHandle, type HandleResult, type NameLookup,
} from './db.js';

export type SyncDbVerdict = { what: string } | { pending: { typePath: string; method: string } } | null;

const lookups = new WeakMap<FileModel, NameLookup>();

function lookupOf(model: FileModel): NameLookup {
  let lookup = lookups.get(model);
  if (!lookup) lookups.set(model, (lookup = ownModuleLookup(model)));
  return lookup;
}

/** The type path a handle reference of another module stands for (`Depends(app.db.get)`, `@app.db.S.x`). */
function refPath(h: Extract<HandleResult, { kind: 'ref' }>): string {
  return (h.wrapper === 'Depends' ? `Depends(${h.ref})` : `${h.wrapper}${h.ref}`) + h.rest;
}

/**
 * `session.query(...)` only builds a `Query`: the I/O happens where it runs. Is it run only in a
 * worker thread: the chain (or its bound `.all`) handed to an offload call
 * (`await asyncio.to_thread(db.query(User).limit(9).all)`), or bound to a name that is used
 * nowhere else (`q = db.query(User)...; await run_in_threadpool(q.all)`)?
 */
function queryRunsInThread(model: FileModel, call: CallInfo): boolean {
  let top: SyntaxNode = call.node;
  while (top.parent?.type === 'attribute' && top.parent.parent?.type === 'call' && top.parent.parent.childForFieldName('function')?.id === top.parent.id) top = top.parent.parent;
  const handed = (n: SyntaxNode): boolean => {
    const expr = n.parent?.type === 'attribute' && n.parent.childForFieldName('object')?.id === n.id && n.parent.parent?.type !== 'call' ? n.parent : n;
    const args = expr.parent;
    return args?.type === 'argument_list' && isOffloadCallee(args.parent?.childForFieldName('function')?.text ?? '');
  };
  if (handed(top)) return true;
  const assign = top.parent;
  const name = assign?.type === 'assignment' && assign.childForFieldName('right')?.id === top.id ? assign.childForFieldName('left') : null;
  if (name?.type !== 'identifier' || call.functionIndex < 0) return false;
  const body = model.functions[call.functionIndex]!.body;
  const uses = body ? variableRefs(body, name.text).filter((r) => r.startIndex > top.endIndex) : [];
  return uses.length > 0 && uses.every(handed);
}

/**
 * Is `call` a sync DB call? `{ what }` when the file decides it, `{ pending }` when the receiver's
 * type path names another module (the repo phase decides), else null.
 */
export function syncDbCall(model: FileModel, call: CallInfo): SyncDbVerdict {
  const direct = blockingDbFunction(call.qualifiedName);
  if (direct) return call.awaited || call.offloaded ? null : { what: direct };
  if (!mayBeBlockingDbMethod(call.method) || call.offloaded || !call.hasReceiver || call.awaited) return null;
  if (call.method === 'query' && queryRunsInThread(model, call)) return null;
  const t = receiverType(model, call);
  if (!t) return untypedSessionParam(model, call) ? { what: handleMethodLabel('session', 'Session', call.method) } : null;
  const h = resolveHandle(t, lookupOf(model));
  if (!h) return null;
  if (h.kind === 'ref') return { pending: { typePath: refPath(h), method: call.method } };
  if (h.state === 'async' || !isBlockingDbMethod(h.state, call.method)) return null;
  return { what: handleMethodLabel(h.state, h.label, call.method) };
}

/**
 * The receiver's type path of a DB-handle method call (`repo.commit()`) that this file cannot
 * decide: a name of another module, or an object of the repo whose attribute of that name may be
 * a handle's bound method (`self.commit = session.commit`). The repo phase decides it. Null
 * when the file knows the receiver is, or is not, a handle.
 */
export function pendingHandleMethod(model: FileModel, call: CallInfo): { typePath: string; method: string } | null {
  if (!call.hasReceiver) return null;
  const t = receiverType(model, call);
  if (!t) return null;
  const h = resolveHandle(t, lookupOf(model));
  if (h?.kind === 'handle') return null;
  return { typePath: h?.kind === 'ref' ? refPath(h) : t, method: call.method };
}

/** A parameter named as a session is (`db`, `session`, `db_session`, `orders_db`), not an HTTP or auth one (`http_session`). */
const SESSION_PARAM = /^(session|db|db_session|dbsession|sess|(?!(?:https?|client|web|aiohttp|requests?|api|browser|ws|boto3?|s3|aws|gcp|oauth|cookie|user|login|auth)_)[a-z][a-z0-9]*_(?:session|db))$/;
/** Imports that say the file works with SQLAlchemy or the project's models. */
const ORM_IMPORT = /(^|\.)(sqlalchemy|sqlmodel|flask_sqlalchemy)(\.|$)|(^|\.)models?(\.|$)/;

/**
 * `db.query(User)...` in a coroutine, on a parameter with no annotation, named as a session is,
 * in a file that imports SQLAlchemy or the project's models: a coroutine that takes the caller's
 * session (older FastAPI code rarely annotates it) and runs a sync `Session`'s `query()` on the
 * event loop — an `AsyncSession` has no `query()`. Only `query()`: an un-awaited `execute` or
 * `commit` there may be a forgotten `await` on an `AsyncSession` (PA211's).
 *
 * Not in a sync function: whether its session is a sync one on the event loop depends on what each
 * caller hands it, and inferring it from the helper alone reported every sync helper of a
 * project whose coroutines share one sync session by design (an independent review of such
 * findings on a service nobody here had scanned: 0 of 8 worth a report; the parameter's type
 * has to come from the caller's argument, which the repo phase does not carry yet).
 */
function untypedSessionParam(model: FileModel, call: CallInfo): boolean {
  const r = call.receiver;
  if (r?.type !== 'identifier' || !SESSION_PARAM.test(r.text) || call.functionIndex < 0) return false;
  const fn = model.functions[call.functionIndex]!;
  const param = fn.params.find((p) => p.name === r.text);
  if (!param || param.annotation || (param.defaultText !== null && param.defaultText !== 'None')) return false;
  // Rebound in the function: the parameter is not what the call sees.
  if (model.assignments.some((a) => a.functionIndex === fn.index && a.target === r.text)) return false;
  if (!fn.isAsync || call.method !== 'query') return false;
  return [...model.imports.values()].some((q) => ORM_IMPORT.test(q));
}
