/**
 * Repository libraries: advanced-alchemy's `SQLAlchemyAsync/SyncRepository` and
 * `SQLAlchemyAsync/SyncRepositoryService` (also the `Slug` variants). A project subclasses them
 * and calls their inherited methods on `self`; what those methods do is the library's:
 * - reads: one SELECT each (`list`, `get_one`, `count`, ...);
 * - writes: `add`/`create`/`update`/... stage or flush rows (commit only with `auto_commit=True`);
 *   the bulk ones (`update_many`, `delete_where`, ...) send one statement per call.
 * Shared by the query family (reads and bulk writes per loop item) and the transaction family
 * (writes that only flush).
 */
import { fileClasses } from './classes.js';
import type { FileModel } from './model.js';
import type { CallGraph } from '../analysis/callgraph.js';
import type { SummaryCall } from '../analysis/summary.js';

/** A base class of the library, as written in a class statement (`service.SQLAlchemyAsyncRepositoryService[M]`). */
export const REPOSITORY_LIBRARY_BASE = /(^|\.)SQLAlchemy(Async|Sync)(Slug)?Repository(Service)?(\[|$)/;

/** Inherited methods that run a SELECT. */
export const LIBRARY_READS: ReadonlySet<string> = new Set(['get', 'get_one', 'get_one_or_none', 'list', 'list_and_count', 'count', 'exists']);

/** Inherited write methods (they take the library's `auto_commit=` keyword): they stage or flush rows. */
export const LIBRARY_WRITES: ReadonlySet<string> = new Set(['add', 'add_many', 'create', 'create_many', 'update', 'update_many', 'upsert', 'upsert_many', 'delete', 'delete_many', 'delete_where']);

/** Inherited methods that send one UPDATE/DELETE statement for many rows. */
export const LIBRARY_BULK_WRITES: ReadonlySet<string> = new Set(['update_many', 'delete_many', 'delete_where', 'upsert_many']);

/**
 * Inherited writes that look the row up first: one SELECT per call (`get_one_or_none` on the
 * match fields for `upsert`, `get` by id for `update` and `delete`), then a merge or delete and
 * a flush.
 */
export const LIBRARY_LOOKUP_WRITES: ReadonlySet<string> = new Set(['upsert', 'get_or_upsert', 'get_and_update', 'update', 'delete']);

/**
 * The repo class a call's receiver is an instance of, when that class derives from the library
 * and the method called is the library's own (no class of the repo on the way defines it):
 * `self.tags.upsert(...)` with `tags` a property returning a `TagService`. Null otherwise.
 */
export function libraryReceiver(graph: CallGraph, file: number, call: SummaryCall): string | null {
  if (!call.method || graph.resolveCall(file, call)) return null;
  const mro = graph.receiverClasses(file, call);
  return mro.length && mro.some((c) => c.cls.bases.some((b) => REPOSITORY_LIBRARY_BASE.test(b))) ? mro[0]!.cls.name : null;
}

const memo = new WeakMap<FileModel, Set<string>>();

/** The file's classes that derive from the library, directly or through another class of the file. */
export function repositoryLibraryClasses(model: FileModel): ReadonlySet<string> {
  let out = memo.get(model);
  if (out) return out;
  out = new Set();
  const classes = fileClasses(model);
  let grew = true;
  while (grew) {
    grew = false;
    for (const c of classes) {
      if (out.has(c.name)) continue;
      if (c.bases.some((b) => REPOSITORY_LIBRARY_BASE.test(b) || out!.has(b.replace(/\[.*$/, '').split('.').pop()!))) {
        out.add(c.name);
        grew = true;
      }
    }
  }
  memo.set(model, out);
  return out;
}

/** The model a library service or repository class of the file is specialised with (`SQLAlchemyAsyncRepositoryService[m.Team]` → `Team`), or null. */
export function libraryClassModel(model: FileModel, cls: string): string | null {
  const info = fileClasses(model).find((c) => c.name === cls);
  const arg = info ? [...info.typeArgs.values()][0] : undefined;
  return arg ? arg.split('.').pop()! : null;
}
