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
import { flagAtCall, leavesFlagOff } from '../dist/src/semantic/guards.js';
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
    // A literal `True` is recorded, for the branches a flag that defaults on leaves to `False`.
    expect(call(17, 'resolve').passes).toBe('aa||=1:t');
    expect(call(18, 'resolve').passes).toBe('az|strict=f');
    expect(call(19, 'resolve').passes).toBe('a|deep,strict|=strict:n1');
    expect(call(20, 'resolve').passes).toBe('a||*');
    // The facts survive packing.
    expect(unpackSummary(packSummary(summary))).toEqual(summary);
  });

  it('reads `is None` tests, every flag of an `and`, and an `or` before an early exit', async () => {
    const src = [
      'def notify(reg, tpl, *, to_managers=False, receipt=None, verbose=True):',
      '    if not to_managers and ready(reg) and receipt is None:',
      '        tickets(reg)',
      '    if receipt is not None:',
      '        attach(receipt)',
      '    if to_managers and ready(reg):',
      '        managers(reg)',
      '    else:',
      '        registrant(reg)',
      '    if verbose is None:',
      '        log(reg)',
      '',
      'def both(a=None, b=None):',
      '    if a is None or b is None:',
      '        raise ValueError()',
      '    pair(a, b)',
      '',
      'def ready(r): ...',
      'def tickets(r): ...',
      'def attach(r): ...',
      'def managers(r): ...',
      'def registrant(r): ...',
      'def log(r): ...',
      'def pair(a, b): ...',
      '',
    ].join('\n');
    const dir = tempTree('pa-guards-none-', { 'app/notify.py': src });
    const parser = await createParser('wasm');
    const summary = analyzeFile('app/notify.py', path.join(dir, 'app/notify.py'), parser, [], emptyContext(dir)).summary!;
    const call = (line: number, callee: string) => summary.calls.find((c: { line: number; calleeText: string }) => c.line === line && c.calleeText === callee)!;
    // Both flags of the `and` must stay unset for the body to run.
    expect(call(3, 'tickets').guard).toBe('to_managers@-1-&receipt@-1?-');
    expect(call(5, 'attach').guard).toBe('receipt@-1?');
    expect(call(7, 'managers').guard).toBe('to_managers@-1');
    // The `else` of an `and` runs when either operand fails: no flag decides it.
    expect(call(9, 'registrant').guard).toBeUndefined();
    // `is None` says nothing of a flag that defaults to True.
    expect(call(11, 'log').guard).toBeUndefined();
    expect(call(16, 'pair').guard).toBe('a@0?&b@1?');
    // A call that turns any one of the flags off does not reach the code.
    expect(leavesFlagOff('aa|receipt', 'to_managers@-1-&receipt@-1?-')).toBe(true);
    expect(leavesFlagOff('aa|to_managers', 'to_managers@-1-&receipt@-1?-')).toBe(true);
    expect(leavesFlagOff('aa|', 'to_managers@-1-&receipt@-1?-')).toBe(false);
    expect(leavesFlagOff('aa|', 'a@0&b@1')).toBe(false);
    expect(leavesFlagOff('a|', 'a@0&b@1')).toBe(true);
    expect(flagAtCall('p||>0:x@0', 'a@0&b@1')).toBe('off');
    expect(flagAtCall('pa||>0:x@0', 'a@0&b@1')).toEqual({ forwards: 'x@0' });
    // `is None` / `is not None`: a literal False is a value, None is not; a lookup may be either.
    expect(leavesFlagOff('aa|receipt=f', 'receipt@-1?')).toBe(false);
    expect(leavesFlagOff('aa|receipt=z', 'receipt@-1?')).toBe(true);
    expect(leavesFlagOff('aa|', 'receipt@-1?')).toBe(true);
    expect(leavesFlagOff('aa|receipt=f', 'receipt@-1?-')).toBe(true);
    expect(leavesFlagOff('aa|receipt=z', 'receipt@-1?-')).toBe(false);
    expect(leavesFlagOff('aa|receipt=n', 'receipt@-1?-')).toBe(false);
    expect(leavesFlagOff('aa|receipt=n', 'receipt@-1?')).toBe(false);
    expect(leavesFlagOff('an|', 'shelf@1?-')).toBe(false);
    expect(leavesFlagOff('aa|', 'shelf@1?-')).toBe(true);
    // The calling function hands its own **kwargs on: its caller decides, by keyword.
    expect(flagAtCall('aa||**', 'with_author@2')).toEqual({ forwards: 'with_author@-1' });
    expect(flagAtCall('aa|with_author||**', 'with_author@2')).toBe('on');
    expect(flagAtCall('aa||*', 'with_author@2')).toBe('on');
    expect(flagAtCall('a|with_author', 'with_author@-1')).toBe('on');
    expect(flagAtCall('a|', 'with_author@-1')).toBe('off');
    expect(leavesFlagOff('aa||**', 'shelf@2?-')).toBe(false);
    // For a truth test, None and False are both off.
    expect(leavesFlagOff('az|', 'deep@1')).toBe(true);
    expect(leavesFlagOff('a|deep=z', 'deep@1')).toBe(true);
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
    // A flag that defaults on: off only when a literal False/None is passed.
    expect(leavesFlagOff('a|', 'deep@1+')).toBe(false);
    expect(leavesFlagOff('af|', 'deep@1+')).toBe(true);
    expect(leavesFlagOff('a|deep=f', 'deep@1+')).toBe(true);
    // The `else` of `if key:` (runs while `key` stays unset): off when the call passes a value.
    expect(leavesFlagOff('aa|', 'key@1-')).toBe(true);
    expect(leavesFlagOff('a|key', 'key@1-')).toBe(true);
    expect(leavesFlagOff('a|', 'key@1-')).toBe(false);
    expect(leavesFlagOff('af|', 'key@1-')).toBe(false);
    expect(leavesFlagOff('a|key=f', 'key@1-')).toBe(false);
    expect(leavesFlagOff('ap||>1:key@0', 'key@1-')).toBe(false);
    expect(leavesFlagOff('aa||*', 'key@1-')).toBe(false);
  });

  it('tells which flag of the calling function a call passes on', () => {
    // `inner(k, include)` / `inner(k, deep=include)` where `include` is the caller's flag `include@1`.
    expect(flagAtCall('ap||>1:include@1', 'deep@1')).toEqual({ forwards: 'include@1' });
    expect(flagAtCall('a||>deep:include@1', 'deep@1+')).toEqual({ forwards: 'include@1' });
    // Passed on to another parameter: this flag is decided as before.
    expect(flagAtCall('a||>other:include@1', 'deep@1')).toBe('off');
    expect(flagAtCall('a||*|>deep:include@1', 'deep@1')).toBe('on');
  });

  it('reads the branch a flag that defaults on leaves to the calls that turn it off', async () => {
    const source = [
      'def deliver(db, ids, *, queued=True):',
      '    if queued:',
      '        db.add(ids)',
      '        return',
      '    post(ids)',
      'def deliver_now(db, ids, queued=True):',
      '    if not queued:',
      '        post(ids)',
      '    else:',
      '        db.add(ids)',
      'def post(ids): ...',
      '',
    ].join('\n');
    const dir = tempTree('pa-guards-', { 'app/falsy.py': source });
    const parser = await createParser('wasm');
    const summary = analyzeFile('app/falsy.py', path.join(dir, 'app/falsy.py'), parser, [], emptyContext(dir)).summary!;
    const call = (line: number) => summary.calls.find((c: { line: number }) => c.line === line)!;
    expect(call(5).guard).toBe('queued@-1!');
    expect(call(8).guard).toBe('queued@2!');
    expect(call(10).guard).toBe('queued@2+');
    // Off when the call leaves the default or passes a literal `True`; on for `False`, `None` or any other value.
    expect(leavesFlagOff('aa|', 'queued@-1!')).toBe(true);
    expect(leavesFlagOff('aa|queued|=queued:t', 'queued@-1!')).toBe(true);
    expect(leavesFlagOff('aa|queued=f', 'queued@-1!')).toBe(false);
    expect(leavesFlagOff('aa|queued=z', 'queued@-1!')).toBe(false);
    expect(leavesFlagOff('aa|queued', 'queued@-1!')).toBe(false);
    expect(leavesFlagOff('aaa||=2:t', 'queued@2!')).toBe(true);
    expect(leavesFlagOff('aaf|', 'queued@2!')).toBe(false);
    expect(leavesFlagOff('aa||*', 'queued@-1!')).toBe(false);
    // Passed on from the calling function's own flag: its default-on flag turned off, or its default-off flag left unset.
    expect(flagAtCall('aa||>queued:later@-1+', 'queued@-1!')).toEqual({ forwards: 'later@-1!' });
    expect(flagAtCall('aa||>queued:later@-1', 'queued@-1!')).toEqual({ forwards: 'later@-1-' });
    expect(flagAtCall('aa||**', 'queued@-1!')).toEqual({ forwards: 'queued@-1!' });
    // A flag passed on to another slot says nothing of this one: the call's own arguments decide.
    expect(leavesFlagOff('aa||>other:later@-1+', 'queued@-1!')).toBe(true);
    expect(leavesFlagOff('aa|key|>other:later@-1+', 'key@1-')).toBe(true);
    expect(leavesFlagOff('a||>other:later@-1+', 'key@1?-')).toBe(false);
    expect(leavesFlagOff('a|key|>other:later@-1+', 'key@1?-')).toBe(true);
    // The `else` of a default-off flag's test, passed a caller's default-on flag: off only when that caller's caller turns it off.
    expect(flagAtCall('aa||>key:later@-1+', 'key@1-')).toEqual({ forwards: 'later@-1!' });
  });

  it('records a flag of the calling function passed on, positionally or by keyword', async () => {
    const source = [
      'def outer(k, include=False, *, strict=None, loud=True):',
      '    inner(k, include)',
      '    inner(k, deep=include, strict=strict)',
      '    inner(k, deep=loud)',
      '    inner(include, k)',
      'def inner(k, deep=False, strict=None): ...',
      '',
    ].join('\n');
    const dir = tempTree('pa-guards-', { 'app/pass.py': source });
    const parser = await createParser('wasm');
    const summary = analyzeFile('app/pass.py', path.join(dir, 'app/pass.py'), parser, [], emptyContext(dir)).summary!;
    const passes = (line: number) => summary.calls.find((c: { line: number }) => c.line === line)!.passes;
    expect(passes(2)).toBe('ap||>1:include@1');
    expect(passes(3)).toBe('a||>deep:include@1;strict:strict@-1');
    // A flag that defaults on is passed on too: `inner`'s branch under `if not deep:` runs only
    // when `outer`'s own caller turns `loud` off.
    expect(passes(4)).toBe('a||>deep:loud@-1+');
    expect(passes(5)).toBe('pa||>0:include@1');
  });

  it('reads tests of a parameter against literals, and which calls pass a literal that rules the branch out', async () => {
    const source = [
      'def lookup(db, kind, ref, strict=False):',
      '    if kind == "team":',
      '        return fetch_team(db, ref)',
      '    if kind not in ("member", "guest"):',
      '        raise ValueError(kind)',
      '    return cached(ref)',
      '',
      'def badge(style="plain", *, size=2):',
      '    if style in ("rich", "html") and size != 0:',
      '        render(style)',
      '',
      'def only_teams(db, kind, ref):',
      '    if kind != "team":',
      '        return None',
      '    return fetch_team(db, ref)',
      '',
      'def rebound(kind):',
      '    kind = kind.lower()',
      '    if kind == "team":',
      '        fetch_team(None, kind)',
      '',
      'def callers(db, k, r):',
      '    lookup(db, "member", r)',
      '    lookup(db, "team", r)',
      '    lookup(db, k, r)',
      '    lookup(db, kind="guest", ref=r)',
      '    badge()',
      '    badge(style="html")',
      '    badge("rich", size=0)',
      '',
      'def fetch_team(db, r): ...',
      'def cached(r): ...',
      'def render(s): ...',
      '',
    ].join('\n');
    const dir = tempTree('pa-guards-lit-', { 'app/kinds.py': source });
    const parser = await createParser('wasm');
    const summary = analyzeFile('app/kinds.py', path.join(dir, 'app/kinds.py'), parser, [], emptyContext(dir)).summary!;
    const call = (line: number, callee: string) => summary.calls.find((c: { line: number; calleeText: string }) => c.line === line && c.calleeText === callee)!;
    expect(call(3, 'fetch_team').guard).toBe('kind@1~=steam');
    // What follows `if kind not in (...): raise` runs only for those kinds.
    expect(call(6, 'cached').guard).toBe('kind@1~=smember:sguest');
    expect(call(10, 'render').guard).toBe('style@0~=srich:shtml%splain&size@-1~!n0%n2');
    expect(call(15, 'fetch_team').guard).toBe('kind@1~=steam');
    // A parameter the function rebinds no longer says what the caller passed.
    expect(call(20, 'fetch_team').guard).toBeUndefined();
    const passes = (line: number) => call(line, line < 27 ? 'lookup' : 'badge').passes;
    expect(passes(23)).toBe('aaa||=1:smember');
    expect(passes(26)).toBe('a|kind,ref|=kind:sguest');
    expect(flagAtCall(passes(23), 'kind@1~=steam')).toBe('off');
    expect(flagAtCall(passes(24), 'kind@1~=steam')).toBe('on');
    expect(flagAtCall(passes(25), 'kind@1~=steam')).toBe('on');
    expect(flagAtCall(passes(26), 'kind@1~=steam')).toBe('off');
    expect(flagAtCall(passes(26), 'kind@1~=smember:sguest')).toBe('on');
    const g = 'style@0~=srich:shtml%splain&size@-1~!n0%n2';
    // Omitted: the literal default decides.
    expect(flagAtCall(passes(27), g)).toBe('off');
    expect(flagAtCall(passes(28), g)).toBe('on');
    expect(flagAtCall(passes(29), g)).toBe('off');
    // Unpacked arguments, a flag passed on, or a default that is no literal: anything may come.
    expect(flagAtCall('a||*', 'kind@1~=steam')).toBe('on');
    expect(flagAtCall('a|', 'kind@1~=steam')).toBe('on');
    expect(flagAtCall('az|', 'kind@1~=steam')).toBe('off');
    expect(flagAtCall('a|kind=z', 'kind@1~!steam')).toBe('on');
    expect(unpackSummary(packSummary(summary))).toEqual(summary);
  });
});
