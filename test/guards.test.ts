/**
 * Flag guards (semantic/guards.ts): which branch of a function a keyword flag that defaults off
 * guards, what a call passes, and which calls leave the flag off; and the facts survive packing.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempTree } from './helpers/tmp.js';
import { createParser } from '../dist/src/parse/parser.js';
import { analyzeFile } from '../dist/src/engine/analyzeFile.js';
import { emptyContext } from '../dist/src/discovery/context.js';
import { leavesFlagOff } from '../dist/src/semantic/guards.js';
import { packSummary, unpackSummary } from '../dist/src/analysis/packedSummary.js';

const SOURCE = [
  'def resolve(key, deep=False, *, strict=None, retries=3):',
  '    if deep:',
  '        expand(key)',
  '    if strict and key:',
  '        check(key)',
  '    if not strict:',
  '        return None',
  '    audit(key)',
  '',
  'def rebinds(key, deep=False):',
  '    deep = deep or key.startswith("x")',
  '    if deep:',
  '        expand(key)',
  '',
  'def caller(k, opts):',
  '    resolve(k)',
  '    resolve(k, True)',
  '    resolve(k, None, strict=False)',
  '    resolve(k, deep=flag(), strict=1)',
  '    resolve(k, **opts)',
  '',
  'def expand(k): ...',
  'def check(k): ...',
  'def audit(k): ...',
  'def flag(): ...',
  '',
].join('\n');

describe('flag guards', () => {
  it('records the guard of each guarded call and what each call passes', async () => {
    const dir = tempTree('pa-guards-', { 'app/flags.py': SOURCE });
    const parser = await createParser('wasm');
    const summary = analyzeFile('app/flags.py', path.join(dir, 'app/flags.py'), parser, [], emptyContext(dir)).summary!;
    const call = (line: number, callee: string) => summary.calls.find((c: { line: number; calleeText: string }) => c.line === line && c.calleeText === callee)!;
    expect(call(3, 'expand').guard).toBe('deep@1');
    expect(call(5, 'check').guard).toBe('strict@-1');
    expect(call(8, 'audit').guard).toBe('strict@-1');
    // A flag the function rebinds guards nothing.
    expect(call(13, 'expand').guard).toBeUndefined();
    expect(call(16, 'resolve').passes).toBe('a|');
    expect(call(17, 'resolve').passes).toBe('aa|');
    expect(call(18, 'resolve').passes).toBe('af|');
    expect(call(19, 'resolve').passes).toBe('a|deep,strict');
    expect(call(20, 'resolve').passes).toBe('a||*');
    // The facts survive packing.
    expect(unpackSummary(packSummary(summary))).toEqual(summary);
  });

  it('tells which calls leave a flag off', () => {
    expect(leavesFlagOff('a|', 'deep@1')).toBe(true);
    expect(leavesFlagOff('aa|', 'deep@1')).toBe(false);
    expect(leavesFlagOff('af|', 'deep@1')).toBe(true);
    expect(leavesFlagOff('a|deep', 'deep@1')).toBe(false);
    expect(leavesFlagOff('a|other', 'deep@1')).toBe(true);
    expect(leavesFlagOff('aaaa|', 'strict@-1')).toBe(true);
    expect(leavesFlagOff('a||*', 'deep@1')).toBe(false);
    expect(leavesFlagOff(undefined, 'deep@1')).toBe(false);
  });
});
