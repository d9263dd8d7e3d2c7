/**
 * The file walk: `.gitignore` files at every level, default excludes, and directories reached
 * through symlinks (walked once, never outside the tree, never in a loop).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir, tempTree } from './helpers/tmp.js';
import { walk } from '../dist/src/discovery/walk.js';

const rels = (root: string) => walk(root).python.map((f) => f.rel);

describe('walk', () => {
  it('honours .gitignore files at the root and in subdirectories, relative to where they are', () => {
    const root = tempTree('pa-walk-', {
      '.gitignore': 'generated/\n',
      'app/.gitignore': 'local_*.py\n/top_only.py\n',
      'app/main.py': '',
      'app/local_settings.py': '',
      'app/top_only.py': '',
      'app/sub/top_only.py': '',
      'app/sub/local_x.py': '',
      'generated/stub.py': '',
      'lib/local_ok.py': '',
      'node_modules/pkg/x.py': '',
    });
    expect(rels(root)).toEqual(['app/main.py', 'app/sub/top_only.py', 'lib/local_ok.py']);
  });

  it('ignores a directory named .gitignore instead of failing', () => {
    const root = tempTree('pa-walk-', { 'app/.gitignore/readme.txt': 'not a gitignore', 'app/a.py': '' });
    expect(rels(root)).toEqual(['app/a.py']);
  });

  it('walks a directory once however many symlinks lead to it, and stops at loops and the tree edge', () => {
    const outside = tempTree('pa-walk-out-', { 'secret.py': '' });
    const root = tempTree('pa-walk-', { 'pkg/mod.py': '', 'pkg/inner/deep.py': '' });
    fs.symlinkSync(path.join(root, 'pkg'), path.join(root, 'alias')); // a second way into pkg/
    fs.symlinkSync(root, path.join(root, 'pkg/inner/loop')); // back to the root
    fs.symlinkSync(outside, path.join(root, 'outside'));
    const walked = rels(root);
    // `alias` sorts before `pkg`: the first way in is the one walked.
    expect(walked).toEqual(['alias/inner/deep.py', 'alias/mod.py']);
  });

  it('reads an empty tree', () => {
    expect(walk(tempDir('pa-walk-')).python).toEqual([]);
  });
});
