/** The merge's grouping of event-loop findings that end at one blocking call (merge/sharedSinks.ts). */
import { describe, expect, it } from 'vitest';
import { groupSharedSinks } from '../dist/src/merge/sharedSinks.js';
import type { Finding, SinkRef } from '../src/types.js';
import { finding } from './helpers/result.js';

const sink: SinkRef = { path: 'app/util.py', line: 5, column: 5, endLine: 5, endColumn: 18, function: 'settle', qualifiedName: 'util.settle', what: 'time.sleep', lineText: 'time.sleep(2)' };

function caller(path: string, fn: string, severity: Finding['severity'], advisory = false): Finding {
  return finding({ code: 'PA303', severity, advisory, path, line: 7, function: fn, chain: [
    { path, line: 7, column: 5, function: fn, call: 'settle' },
    { path: 'app/util.py', line: 5, column: 5, function: 'util.settle', call: 'time.sleep' },
  ] });
}

describe('shared blocking calls', () => {
  it('groups three or more callers into one finding at the call, at the worst severity, with their call sites', () => {
    const members = [caller('app/a.py', 'a', 'medium'), caller('app/b.py', 'b', 'high'), caller('app/c.py', 'handle', 'medium')];
    const other = caller('app/d.py', 'd', 'high');
    const sinks = new Map<Finding, SinkRef>([...members.map((m) => [m, sink] as [Finding, SinkRef]), [other, { ...sink, line: 9 }]]);
    const out = groupSharedSinks([...members, other], sinks);
    expect(out).toHaveLength(2);
    const grouped = out.find((f) => f.path === 'app/util.py')!;
    expect(grouped).toMatchObject({ line: 5, severity: 'high', function: 'settle', advisory: false });
    expect(grouped.callers!.map((c) => c.path)).toEqual(['app/a.py', 'app/b.py', 'app/c.py']);
    expect(grouped.message).toMatch(/the 3 coroutines/);
    expect(out).toContain(other);
  });

  it('counts coroutines by module, groups advisory findings apart, and leaves two callers alone', () => {
    const same = ['x', 'y', 'z'].map((m) => caller(`app/${m}/handlers.py`, 'handle', 'high'));
    const adv = ['s1', 's2', 's3'].map((m) => caller(`scripts/${m}.py`, 'run', 'high', true));
    const sinks = new Map<Finding, SinkRef>([...same, ...adv].map((m) => [m, sink]));
    const out = groupSharedSinks([...same, ...adv], sinks);
    expect(out.map((f) => [f.path, f.advisory, f.callers?.length ?? 0])).toEqual([['app/util.py', false, 3], ['app/util.py', true, 3]]);
    const two = same.slice(0, 2);
    expect(groupSharedSinks(two, new Map(two.map((m) => [m, sink])))).toEqual(two);
  });
});
