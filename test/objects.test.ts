/** Calls through objects (fixtures/objects): the chains the call graph now follows, and how sure it is. */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../dist/src/config/config.js';
import { scan } from '../dist/src/engine/scan.js';
import type { Finding } from '../src/types.js';
import { chainNames } from './helpers/result.js';

const ROOT = path.resolve(__dirname, '../fixtures/objects');
let findings: Finding[] = [];

beforeAll(async () => {
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1 }, {}, null);
  findings = (await scan(ROOT, config, { inProcessBytes: Infinity })).result.findings;
});

const at = (text: string) => {
  const lines = fs.readFileSync(path.join(ROOT, 'app/api.py'), 'utf8').split('\n');
  const line = lines.findIndex((l) => l.includes(text)) + 1;
  return findings.find((f) => f.path === 'app/api.py' && f.line === line);
};

describe('calls through objects', () => {
  it('follows constructors, attributes, providers, protocols, properties and callbacks', () => {
    expect(chainNames(at('Warmup()')!.chain)).toEqual(['constructors', 'Warmup.__init__', 'time.sleep']);
    // Four handlers reach `RateClient.latest`: one finding at its `requests.get`, the four as callers,
    // found through an annotation, a provider, an attribute of a built object and a module singleton.
    const shared = findings.filter((f) => f.path === 'app/clients.py' && f.code === 'PA301');
    expect(shared).toHaveLength(1);
    expect(shared[0]!.callers!.map((c) => `${c.function}: ${c.call}`)).toEqual([
      'annotated: client.latest', 'injected: client.latest', 'through_attributes: quotes.quote', 'module_singleton: rates.latest',
    ]);
    expect(shared[0]!.message).toMatch(/4 coroutines/);
    expect(chainNames(shared[0]!.chain).slice(-2)).toEqual(['RateClient.latest', 'requests.get']);
    expect(chainNames(at('quotes.alert()')!.chain)).toEqual(['through_protocol', 'Quotes.alert', 'MailNotifier.send', 'requests.post']);
    expect(chainNames(at('key = settings.secret')!.chain)).toEqual(['property_read', 'Settings.secret', 'open']);
    expect(chainNames(at('with Lock()')!.chain)).toEqual(['context_manager', 'Lock.__enter__', 'time.sleep']);
    expect(chainNames(at('loop.call_soon(partial(flush_now, 1))')!.chain)).toEqual(['callbacks', 'flush_now', 'time.sleep']);
  });

  it('a call resolved by its method name alone is one severity lower', () => {
    const weak = at('data = poller.poll_remote()')!;
    expect(weak.severity).toBe('medium');
    expect(weak.message).toMatch(/resolved by its method name alone/);
    expect(findings.find((f) => f.path === 'app/clients.py' && f.code === 'PA301')!.severity).toBe('high');
  });
});
