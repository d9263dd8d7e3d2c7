/** Facts about a file that come from the project context, shared by the rules. */
import type { ProjectContext } from '../discovery/context.js';

const MIGRATION_DIRS = /(^|\/)(alembic|migrations)\//;

/**
 * A migration (or the alembic environment next to them): run once by the migration tool on a
 * connection it owns and closes, in a short-lived process.
 */
export function isMigrationFile(project: ProjectContext, path: string): boolean {
  if (MIGRATION_DIRS.test(path)) return true;
  if (project.migrations.files.includes(path)) return true;
  // Alembic's env.py, next to the versions/ directory of migrations it runs.
  if (/(^|\/)env\.py$/.test(path)) {
    const dir = path.slice(0, path.length - 'env.py'.length);
    if (project.migrations.files.some((f) => f.startsWith(`${dir}versions/`))) return true;
  }
  return project.migrations.scriptLocations.some((loc) => loc !== '' && path.startsWith(loc + '/'));
}
