/**
 * The effect collectors of the rule families: what each family adds to a file's summary for
 * its repo rules to follow through calls. The engine passes them to the analysis layer
 * (`collectEffects`, `summarize`), which never imports a rule.
 */
import type { EffectCollector } from '../../analysis/effects.js';
import { siteKindsOf } from '../../analysis/effects.js';
import { FORWARDS_PARAM, PASSES_STATEMENT } from '../../analysis/statementFlow.js';
import { collectQueryEffects, HELD_ID_LOOKUP, INVARIANT_CALL, LOOP_CALL, PASSES_LOADED_ID } from './query/dbCalls.js';
import { collectResolveFacts, PASSES_HELD_ATTR, RESOLVES_ONE_ATTR } from './query/resolveFacts.js';
import { collectRowFacts, ITEM_ARG_CALL, PARAM_ROW_CALL, ROWS_ARG_CALL } from './query/rowCalls.js';
import { collectDeferredLoopReports } from './query/n_update_delete_loop.js';
import { collectCountedCollections, COUNTED_CALL, COUNTED_COLLECTION } from './query/count_via_len.js';
import { collectHeldCollectionLoops, collectHelperRowFacts, collectSerializedRows, HELPER_ROWS_LOOP, SERIALIZED_CALL } from './query/lazy_load_in_loop.js';
import { collectExpiredAttributeReads, collectTransactionEffects, TXN_LOOP_CALL, TXN_OPEN_CALL } from './transaction/effects.js';
import { collectEnqueueHelpers, collectRequestEnqueues, collectBlockEnqueues, ENQUEUE_AFTER_CALL, HANDS_WRITTEN } from './transaction/enqueue_before_commit.js';
import { CLAIM_CALL, collectClaimFacts } from './transaction/unguarded_claim.js';
import { collectProviderBlockWaits, PROVIDER_BLOCK_WAIT } from './transaction/long_held_transaction.js';
import { collectCheckFacts, HELPER_CHECK } from './transaction/check_then_insert.js';
import { collectReturnedRowFacts, ROW_COLLECTION_LOOP } from './query/returnedRowCollections.js';
import { collectHeldGathers } from './lifecycle/concurrent_session.js';
import { collectHeldIdLookups } from './query/redundant_fetch.js';
import { collectStreamDependencies } from './lifecycle/streaming_resource_holding.js';
import { collectWaitDependencies } from './lifecycle/resource_scope_mismatch.js';
import { collectStreamAfterTeardown, collectTaskHandoffs, SESSION_ARG_CALL, STREAM_AFTER_TEARDOWN } from './lifecycle/factory_vs_injection.js';
import { collectSwallowedCalls, HANDLED_REUSE, SWALLOWED_CALL } from './transaction/missing_rollback.js';
import { collectParentCommitCalls, PARENT_COMMIT_CALL } from './transaction/scope_too_narrow.js';
import { ASYNC_ROW_CALL, ASYNC_ROW_HANDED, collectAsyncRowFacts, collectExpiredRowFacts, EXPIRED_ROW_CALL, HANDED_COMMIT_READ, RETURNS_CALL_ROW } from './query/async_lazy_load.js';
import { TXN_RAISE_AFTER, TXN_REQUEST_WRITE, TXN_SCOPE_CALL, TXN_SCOPE_OPEN } from './transaction/libraryWrites.js';
import { collectOwnHandOffs, collectParamWrites, collectReturnFacts, OWN_HANDOFF, PARAM_HANDOFF, REQUEST_HANDOFF } from './transaction/missing_commit.js';
import { collectDeferredCommits } from './transaction/commit_in_loop.js';

export const EFFECT_COLLECTORS: readonly EffectCollector[] = [
  // Query family: `query` / `write` effects and per-item loop call sites (see dbCalls.ts).
  { collect: collectQueryEffects, siteKinds: [LOOP_CALL, INVARIANT_CALL, PASSES_LOADED_ID, PASSES_STATEMENT, FORWARDS_PARAM] },
  { collect: collectResolveFacts, siteKinds: [PASSES_HELD_ATTR, RESOLVES_ONE_ATTR] },
  { collect: collectRowFacts, siteKinds: [PARAM_ROW_CALL, ITEM_ARG_CALL, ROWS_ARG_CALL] },
  // PA108: loops over a collection of a row a base class keeps on `self` (see lazy_load_in_loop.ts).
  { collect: collectHeldCollectionLoops, siteKinds: [] },
  // PA108: loops over the rows a function of another module returns.
  { collect: collectHelperRowFacts, siteKinds: [HELPER_ROWS_LOOP] },
  // PA108: loops over a collection of the one row a function of the repo returns.
  { collect: collectReturnedRowFacts, siteKinds: [ROW_COLLECTION_LOOP] },
  // PA409: gathers whose coroutines share a session through objects of the project handed it.
  { collect: collectHeldGathers, siteKinds: [] },
  // PA108: rows handed to a serializer (marshmallow `many=True`, a FastAPI list response model).
  { collect: collectSerializedRows, siteKinds: [SERIALIZED_CALL] },
  // PA109: `len(row.collection)` per row of a loop, and `len(helper())` of a fetched list, typed in the repo phase.
  { collect: collectCountedCollections, siteKinds: [COUNTED_COLLECTION, COUNTED_CALL] },
  // PA101: a row's id handed back to the library object that loaded it (PA107 leaves those to PA101).
  { collect: collectHeldIdLookups, siteKinds: [HELD_ID_LOOKUP] },
  // PA107 and PA102 findings whose severity waits for the loop's callers (see loops.ts).
  { collect: collectDeferredLoopReports, siteKinds: [] },
  // Transaction family: `commit` effects and per-item / in-transaction call sites.
  { collect: collectTransactionEffects, siteKinds: [TXN_LOOP_CALL, TXN_OPEN_CALL, TXN_SCOPE_OPEN, TXN_SCOPE_CALL, TXN_RAISE_AFTER, TXN_REQUEST_WRITE, REQUEST_HANDOFF] },
  // PA207: per-item commits whose iteration calls a function of the repo (which may call out: then the commit records it).
  { collect: collectDeferredCommits, siteKinds: [] },
  // PA208: functions that write through a session parameter and leave the commit to their caller.
  { collect: collectParamWrites, siteKinds: [PARAM_HANDOFF] },
  // PA208/PA212: functions that return a row they loaded, or an object they added to a session.
  { collect: collectReturnFacts, siteKinds: [] },
  // PA208: sessions a function opens and hands to helpers, never committing them.
  { collect: collectOwnHandOffs, siteKinds: [OWN_HANDOFF] },
  // PA401/PA111: a function's reads of rows its own commit expired (reloads that begin a new transaction).
  { collect: collectExpiredAttributeReads, siteKinds: [] },
  // PA212: a handler's job about an object written through its injected session, committed later by the provider.
  { collect: collectRequestEnqueues, siteKinds: [] },
  // PA212: a job about an object written inside `with provider() as s:` (a provider that commits when the block ends).
  { collect: collectBlockEnqueues, siteKinds: [] },
  // PA212 through helpers: functions that enqueue a job about a parameter, and written objects handed to calls before the commit.
  { collect: collectEnqueueHelpers, siteKinds: [HANDS_WRITTEN, ENQUEUE_AFTER_CALL] },
  // PA213: helpers that return a row read by state, and rows bound from a call that the caller then claims.
  { collect: collectClaimFacts, siteKinds: [CLAIM_CALL] },
  // PA210: helpers that return a row looked up by their parameters, and callers that insert it when missing.
  { collect: collectCheckFacts, siteKinds: [HELPER_CHECK] },
  // PA402: a streaming endpoint's dependency of another module that takes a session.
  { collect: collectStreamDependencies, siteKinds: [] },
  // PA401: a handler that waits on an external call, at each dependency it runs (whose session the repo phase looks at).
  { collect: collectWaitDependencies, siteKinds: [] },
  // PA406: an injected session passed to a function of another module that hands it to a task.
  { collect: collectTaskHandoffs, siteKinds: [SESSION_ARG_CALL] },
  // PA406: calls in a generator a Flask view streams without `stream_with_context`, whose queries the repo phase finds.
  { collect: collectStreamAfterTeardown, siteKinds: [STREAM_AFTER_TEARDOWN] },
  // PA205: waits inside a block over a session from a project's context manager (which may commit when the block ends).
  { collect: collectProviderBlockWaits, siteKinds: [PROVIDER_BLOCK_WAIT] },
  // PA204 through calls: a DB-reaching call in a loop's `try` whose handler swallows the error.
  { collect: collectSwallowedCalls, siteKinds: [SWALLOWED_CALL, HANDLED_REUSE] },
  // PA203 through calls: a call that makes or saves a parent, then children built from it committed apart.
  { collect: collectParentCommitCalls, siteKinds: [PARENT_COMMIT_CALL] },
  // PA111 through calls: coroutines returning one row an AsyncSession loaded, and rows got from them.
  { collect: collectAsyncRowFacts, siteKinds: [ASYNC_ROW_CALL, RETURNS_CALL_ROW, ASYNC_ROW_HANDED] },
  // PA111 after a commit, through calls: coroutines returning rows their commit expired, and callers reading what calls return.
  { collect: collectExpiredRowFacts, siteKinds: [EXPIRED_ROW_CALL, HANDED_COMMIT_READ] },
];

/** Every site kind of the collectors, for `summarize`. */
export const SITE_KINDS: ReadonlySet<string> = siteKindsOf(EFFECT_COLLECTORS);
