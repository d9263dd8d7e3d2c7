/**
 * The project context: what the main thread learns about the project before any rule runs.
 * Plain data, structured-cloneable: built once and handed to every worker once.
 */

export interface Problem {
  file: string;
  reason: string;
}

export interface ProjectContext {
  root: string;
  /** Detected technologies by key (`fastapi`, `sqlalchemy`, `postgresql`, …) with version and source. */
  stack: Record<string, { version: string | null; source: string }>;
  problems: Problem[];
}

export function emptyContext(root: string): ProjectContext {
  return { root, stack: {}, problems: [] };
}
