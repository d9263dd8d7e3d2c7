/** The scan command's V8 tuning: set once, and only on the V8 versions known to have the flag. */
import { spawnSync } from 'node:child_process';
import v8 from 'node:v8';
import { describe, expect, it, vi } from 'vitest';
import { tuneJit } from '../dist/src/engine/jit.js';

describe('tuneJit', () => {
  it('leaves a V8 without the known flag alone, then tunes this one once', () => {
    const set = vi.spyOn(v8, 'setFlagsFromString');
    try {
      expect(tuneJit('6.8.275')).toBe(false);
      expect(tuneJit('14.1.0')).toBe(false);
      expect(tuneJit('not a version')).toBe(false);
      expect(set).not.toHaveBeenCalled();
      expect(tuneJit()).toBe(true);
      expect(tuneJit()).toBe(true);
      expect(set.mock.calls).toEqual([['--max-inlined-bytecode-size-cumulative=0']]);
    } finally {
      set.mockRestore();
    }
  });

  it('sets a flag this V8 knows: nothing is printed', () => {
    const url = new URL('../dist/src/engine/jit.js', import.meta.url).href;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { tuneJit } from '${url}'; console.log(tuneJit());`], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('true');
    // V8 reports an unknown flag on stderr ("Error: unrecognized flag").
    expect(r.stderr).toBe('');
  });
});
