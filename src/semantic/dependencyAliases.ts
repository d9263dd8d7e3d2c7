/**
 * `SessionDep = Annotated[AsyncSession, Depends(get_db)]` in one module, `session: SessionDep` in
 * another: what such an annotation injects (its provider) and what it holds (its type), from the
 * project's dependency aliases (discovery) — also when written from a package root below the
 * scanned root. Same-module aliases are read from the project too.
 */
import { QualifiedIndex, resolveImported, type FileModel } from './model.js';

type DependencyAlias = FileModel['dependencyAliases'][number];

const indexMemo = new WeakMap<readonly DependencyAlias[], QualifiedIndex<DependencyAlias>>();

/** The alias an annotation names (`SessionDep`, `deps.SessionDep`), from the project's aliases the engine put on the model. */
export function dependencyAliasOf(model: FileModel, annotation: string | null | undefined): DependencyAlias | null {
  const aliases = model.dependencyAliases;
  if (!aliases?.length || !annotation) return null;
  const written = annotation.trim().replace(/^["']|["']$/g, '');
  if (!/^[A-Za-z_][\w.]*$/.test(written)) return null;
  const q = resolveImported(model, written);
  if (!q) return null;
  let index = indexMemo.get(aliases);
  if (!index) indexMemo.set(aliases, (index = new QualifiedIndex(aliases, (a) => a.name)));
  const exact = index.get(q);
  if (exact) return exact;
  // Re-exported by a package above the defining module (`from app.api import SessionDep`, with
  // `app/api/__init__.py` importing it from `app.api.deps`): the one alias of that name below it.
  const dot = q.lastIndexOf('.');
  if (dot < 0) return null;
  const pkg = q.slice(0, dot);
  const below = index.sameLast(q).filter((a) => a.name.startsWith(`${pkg}.`) || a.name.includes(`.${pkg}.`));
  return below.length === 1 ? below[0]!.item : null;
}
