/**
 * What `scan PATHS...` audits: the project root (given with `--root`, or the nearest ancestor of
 * the paths that holds a config file, `pyproject.toml`, `setup.cfg` or `.git`) and, when the paths
 * are not the root itself, the files and directories inside it to report on. The engine always
 * reads the whole root, so a helper in another file still completes a chain.
 */
import fs from 'node:fs';
import path from 'node:path';
import { escapeControl } from '../report/escape.js';

/** Files whose presence makes a directory a project root, nearest first. */
export const ROOT_MARKERS = [
  'persist-audit.yaml', '.persist-audit.yaml', 'persist-audit.yml', '.persist-audit.yml', 'pyproject.toml', 'setup.cfg', '.git',
];

export class TargetError extends Error {}

export interface Targets {
  /** Absolute, real path of the project root. */
  root: string;
  /** The root as the outputs name it: the path given when it was the root, else relative to the working directory. */
  rootArg: string;
  /** Root-relative paths to report on; null when the whole root is the target. */
  scope: string[] | null;
  /** One line each, for stderr: explicit files that are not audited, and why. */
  notes: string[];
}

export function resolveTargets(args: string[], rootOption: string | undefined, cwd = process.cwd()): Targets {
  const given = args.length ? args : ['.'];
  const notes: string[] = [];
  const kept: { arg: string; real: string }[] = [];
  const anchors: string[] = [];
  for (const arg of given) {
    const real = realPath(arg, cwd);
    const st = fs.statSync(real);
    anchors.push(st.isDirectory() ? real : path.dirname(real));
    if (st.isDirectory()) kept.push({ arg, real });
    else if (!st.isFile()) notes.push(`${escapeControl(arg)}: not a regular file, skipped`);
    else if (!real.endsWith('.py')) notes.push(`${escapeControl(arg)}: not a Python file (.py), skipped`);
    else kept.push({ arg, real });
  }

  let root: string;
  if (rootOption !== undefined) {
    root = realPath(rootOption, cwd);
    if (!fs.statSync(root).isDirectory()) throw new TargetError(`--root ${escapeControl(rootOption)} is not a directory`);
  } else {
    root = findProjectRoot(commonAncestor(anchors));
  }

  const scope: string[] = [];
  let whole = false;
  for (const { arg, real } of kept) {
    const rel = path.relative(root, real);
    if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      throw new TargetError(`${escapeControl(arg)} is outside the project root ${escapeControl(root)}${rootOption === undefined ? '' : ' (--root)'}`);
    }
    if (rel === '') whole = true;
    else scope.push(rel.split(path.sep).join('/'));
  }
  const onlyArg = given.length === 1 && kept.length === 1 && kept[0]!.real === root ? kept[0]!.arg : null;
  return {
    root,
    rootArg: onlyArg ?? (path.relative(cwd, root) || '.'),
    scope: whole ? null : [...new Set(scope)].sort(),
    notes,
  };
}

/** The nearest directory from `start` upwards that holds a root marker; `start` when none does. */
export function findProjectRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (ROOT_MARKERS.some((m) => fs.existsSync(path.join(dir, m)))) return dir;
    if (path.dirname(dir) === dir) return start;
  }
}

function realPath(arg: string, cwd: string): string {
  try {
    return fs.realpathSync(path.resolve(cwd, arg));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TargetError(`cannot read ${escapeControl(arg)}: ${code === 'ENOENT' ? 'no such file or directory' : code ?? (err as Error).message}`);
  }
}

function commonAncestor(dirs: string[]): string {
  let common = dirs[0]!;
  for (const d of dirs.slice(1)) {
    while (d !== common && !d.startsWith(common.endsWith(path.sep) ? common : common + path.sep)) common = path.dirname(common);
  }
  return common;
}
