/** FastAPI version reading behind PA402/PA406: which constraint means which teardown order. */
import { describe, expect, it } from 'vitest';
import { emptyContext } from '../dist/src/discovery/context.js';
import { fastapiVersion, yieldDependencyOutlivesStream } from '../dist/src/rules/python/lifecycle/semantics.js';

function ctx(version: string | null) {
  const c = emptyContext('.');
  if (version !== undefined) c.stack['fastapi'] = { version, source: 'pyproject.toml', kind: 'framework' };
  return c;
}

describe('FastAPI version for yield-dependency teardown', () => {
  it.each([
    ['==0.115.12', [0, 115, 12], false],
    ['^0.110', [0, 110, 0], false],
    ['~=0.117.1', [0, 117, 1], false],
    ['0.118.0', [0, 118, 0], true],
    ['==0.100.1', [0, 100, 1], true],
    ['>=0.106,<0.118', [0, 117, 999], false],
    ['>=0.100', null, true],
    [null, null, true],
  ])('%s', (constraint, version, outlives) => {
    expect(fastapiVersion(ctx(constraint))).toEqual(version);
    expect(yieldDependencyOutlivesStream(ctx(constraint))).toBe(outlives);
  });
});
