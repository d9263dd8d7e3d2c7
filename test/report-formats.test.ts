import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderGithub, escapeData, escapeProperty } from '../dist/src/report/github.js';
import { renderJson, toJsonReport } from '../dist/src/report/json.js';
import { renderSarif, toSarif, relativeUri } from '../dist/src/report/sarif.js';
import { renderText } from '../dist/src/report/text.js';
import { finding, ruleMeta, scanResult } from './helpers/result.js';
import { validate } from './helpers/schema.js';

const SCHEMA = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../schema/persist-audit.schema.json'), 'utf8'));

/** One finding reported once for the coroutines that reach one blocking helper. */
function shared() {
  return scanResult([
    finding({ code: 'PA303', severity: 'high', path: 'app/pace.py', line: 4, function: 'throttle', callers: [
      { path: 'app/api/a.py', line: 10, column: 5, function: 'first', call: 'throttle' },
      { path: 'app/api/b.py', line: 20, column: 5, function: 'second', call: 'throttle' },
    ] }),
  ]);
}

function sample() {
  return scanResult([
    finding({ code: 'PA301', severity: 'high', path: 'app/api/files.py', line: 42, column: 9, endColumn: 31, chain: [
      { path: 'app/api/files.py', line: 42, column: 9, function: 'upload', call: 'save_blob' },
      { path: 'app/storage.py', line: 7, column: 5, function: 'save_blob', call: 'Path.write_bytes' },
    ] }),
    finding({ code: 'PA303', severity: 'medium', path: 'app/api/files.py', line: 7 }),
    finding({ code: 'PA107', severity: 'critical', path: 'app/repo.py', line: 3, function: undefined }),
    finding({ code: 'PA304', severity: 'low', path: 'app/util.py', line: 1 }),
    finding({
      code: 'PA303',
      severity: 'medium',
      originalSeverity: 'high',
      advisory: true,
      path: 'app/tasks/job.py',
      line: 5,
      downgrades: [{ rule: 'execution_context', from: 'high', to: 'advisory', evidence: 'file under tasks/; timeout= wraps the call; init code' }],
    }),
  ]);
}

describe('text', () => {
  it('prints path:line:col CODE message per finding, then a summary', () => {
    const out = renderText(sample(), { color: false });
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toBe('app/api/files.py:7:5 PA303 sync_sleep_in_async found here');
    expect(lines[1]).toBe('app/api/files.py:42:9 PA301 blocking_io_in_async found here (via upload → save_blob → Path.write_bytes)');
    // The chain's hops, indented under their finding: a place per hop.
    expect(lines[2]).toBe('    app/api/files.py:42:9 in upload: save_blob');
    expect(lines[3]).toBe('    app/storage.py:7:5 in save_blob: Path.write_bytes');
    expect(lines[4]).toBe('app/repo.py:3:5 PA107 query_in_loop found here');
    expect(lines[5]).toBe('app/tasks/job.py:5:5 PA303 [advisory] sync_sleep_in_async found here');
    expect(lines.at(-1)).toBe('Found 5 findings (1 critical, 1 high, 1 medium, 1 low, 1 advisory) in 12 files. Overall score 8.2/10. Done in 123 ms.');
    expect(out).not.toMatch(/\u001b\[/);
  });

  it('is one line when there is nothing to report', () => {
    expect(renderText(scanResult([]), { color: false })).toBe('No findings in 12 files.\n');
  });

  it('colours only when asked', () => {
    expect(renderText(sample(), { color: true })).toMatch(/\u001b\[/);
  });

  it('mentions parse errors and skipped files', () => {
    const r = scanResult([]);
    r.stats = { ...r.stats, parseErrors: 2, skipped: [{ path: 'big.py', reason: 'over 2 MiB' }] };
    expect(renderText(r, { color: false })).toBe('No findings in 12 files.\n2 files with syntax errors (analysed partially), 1 file skipped; --verbose lists them.\n');
  });
});

describe('json', () => {
  it('has exactly the keys of product.md, in order', () => {
    const report = toJsonReport(sample());
    expect(Object.keys(report)).toEqual(['tool', 'root', 'context', 'findings', 'scores', 'stats']);
    expect(report.tool).toEqual({ name: 'persist-audit', version: '0.1.0' });
    expect(Object.keys(report.findings[1])).toEqual([
      'code', 'check', 'category', 'severity', 'originalSeverity', 'advisory', 'path', 'line', 'column', 'endLine',
      'endColumn', 'function', 'message', 'recommendation', 'effort', 'chain', 'downgrades', 'fingerprint',
    ]);
    expect('function' in report.findings[2]).toBe(false); // PA107 has no function
    expect('chain' in report.findings[0]).toBe(false);
    expect(Object.keys(report.scores)).toEqual(['query', 'runtime', 'overall']);
    expect(Object.keys(report.stats)).toEqual(['files', 'lines', 'bytes', 'parseErrors', 'parseErrorFiles', 'skipped', 'internalErrors', 'durationMs']);
  });

  it('validates against the shipped schema', () => {
    const report = JSON.parse(renderJson(sample()));
    expect(validate(SCHEMA, report)).toEqual([]);
    const empty = JSON.parse(renderJson(scanResult([], { families: [] })));
    expect(validate(SCHEMA, empty)).toEqual([]);
  });

  it('the schema rejects what it should', () => {
    const report = JSON.parse(renderJson(sample()));
    report.findings[0].severity = 'advisory';
    report.findings[1].path = '/abs/path.py';
    report.findings[2].line = 0;
    delete report.stats.durationMs;
    report.extra = 1;
    const errors = validate(SCHEMA, report);
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\/findings\/0\/severity: /),
        expect.stringMatching(/^\/findings\/1\/path: /),
        expect.stringMatching(/^\/findings\/2\/line: /),
        expect.stringMatching(/^\/stats: must have required property 'durationMs'/),
        expect.stringMatching(/^\/: must NOT have additional properties/),
      ]),
    );
  });

  it('is deterministic', () => {
    expect(renderJson(sample())).toBe(renderJson(sample()));
    expect(renderJson(sample()).endsWith('}\n')).toBe(true);
  });
});

describe('sarif', () => {
  it('gives a chain finding a code flow with a location per hop', () => {
    const results = toSarif(sample()).runs[0].results;
    const chained = results.find((r: { ruleId: string }) => r.ruleId === 'PA301');
    const flow = chained.codeFlows[0].threadFlows[0].locations.map((l: { location: { physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number } }; message: { text: string } } }) =>
      `${l.location.physicalLocation.artifactLocation.uri}:${l.location.physicalLocation.region.startLine} ${l.location.message.text}`);
    expect(flow).toEqual(['app/api/files.py:42 upload: save_blob', 'app/storage.py:7 save_blob: Path.write_bytes']);
    expect(results.find((r: { ruleId: string }) => r.ruleId === 'PA303').codeFlows).toBeUndefined();
    expect(renderGithub(sample())).toContain('Call chain:%0A  app/api/files.py:42:9 in upload: save_blob%0A  app/storage.py:7:5 in save_blob: Path.write_bytes');
  });

  it('gives a finding reported once for several callers their call sites, in every format', () => {
    const one = toSarif(shared()).runs[0].results.find((r: { locations: { physicalLocation: { artifactLocation: { uri: string } } }[] }) => r.locations[0]!.physicalLocation.artifactLocation.uri === 'app/pace.py');
    expect(one.relatedLocations.map((l: { id: number; physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number } }; message: { text: string } }) =>
      `${l.id} ${l.physicalLocation.artifactLocation.uri}:${l.physicalLocation.region.startLine} ${l.message.text}`))
      .toEqual(['1 app/api/a.py:10 called from first: throttle', '2 app/api/b.py:20 called from second: throttle']);
    expect(toJsonReport(shared()).findings[0].callers).toHaveLength(2);
    expect(renderText(shared(), { color: false })).toContain('    called from app/api/b.py:20:5 in second: throttle');
    expect(validate(SCHEMA, JSON.parse(renderJson(shared())))).toEqual([]);
    expect(renderGithub(shared())).toContain('Called from:%0A  app/api/a.py:10:5 in first: throttle%0A  app/api/b.py:20:5 in second: throttle');
  });

  it('is one SARIF 2.1.0 run with rule metadata', () => {
    const log = toSarif(sample());
    expect(log.version).toBe('2.1.0');
    expect(log.$schema).toMatch(/sarif-2\.1\.0/);
    expect(log.runs).toHaveLength(1);
    const driver = log.runs[0].tool.driver;
    expect(driver.name).toBe('persist-audit');
    expect(driver.version).toBe('0.1.0');
    expect(driver.informationUri).toMatch(/^https:\/\//);
    expect(driver.rules.map((r: { id: string }) => r.id)).toEqual(['PA101', 'PA107', 'PA301', 'PA303', 'PA304']);
    const pa301 = driver.rules.find((r: { id: string }) => r.id === 'PA301');
    expect(pa301).toMatchObject({
      id: 'PA301',
      name: 'blocking_io_in_async',
      shortDescription: { text: expect.any(String) },
      fullDescription: { text: expect.any(String) },
      help: { text: expect.stringContaining('Why'), markdown: expect.stringContaining('```python') },
      helpUri: expect.stringMatching(/^https:\/\//),
      defaultConfiguration: { level: 'error' },
      properties: { tags: ['runtime'] },
    });
  });

  it('maps severities to levels, advisory to note, and points ruleIndex at the rule', () => {
    const log = toSarif(sample());
    const { results } = log.runs[0];
    const rules = log.runs[0].tool.driver.rules;
    const byLoc = Object.fromEntries(results.map((r: any) => [`${r.ruleId}@${r.locations[0].physicalLocation.artifactLocation.uri}:${r.locations[0].physicalLocation.region.startLine}`, r]));
    expect(byLoc['PA107@app/repo.py:3'].level).toBe('error');
    expect(byLoc['PA301@app/api/files.py:42'].level).toBe('error');
    expect(byLoc['PA303@app/api/files.py:7'].level).toBe('warning');
    expect(byLoc['PA304@app/util.py:1'].level).toBe('note');
    expect(byLoc['PA303@app/tasks/job.py:5'].level).toBe('note');
    for (const r of results) {
      expect(rules[r.ruleIndex].id).toBe(r.ruleId);
      expect(r.message.text.length).toBeGreaterThan(0);
      expect(r.partialFingerprints['persistAudit/v1']).toMatch(/^[0-9a-f]{16}(:\d+)?$/);
      const loc = r.locations[0].physicalLocation;
      expect(loc.artifactLocation.uriBaseId).toBe('%SRCROOT%');
      expect(loc.artifactLocation.uri).not.toMatch(/^(\/|[a-z]+:)/i);
      expect(loc.region.startLine).toBeGreaterThanOrEqual(1);
      expect(loc.region.startColumn).toBeGreaterThanOrEqual(1);
      expect(loc.region.endLine).toBeGreaterThanOrEqual(loc.region.startLine);
      expect(loc.region.endColumn).toBeGreaterThanOrEqual(1);
    }
    expect(byLoc['PA301@app/api/files.py:42'].locations[0].physicalLocation.region).toEqual({ startLine: 42, startColumn: 9, endLine: 42, endColumn: 31 });
  });

  it('never emits absolute URIs, and clamps bad positions', () => {
    expect(relativeUri('./app/a b.py')).toBe('app/a%20b.py');
    expect(relativeUri('/etc/x.py')).toBe('etc/x.py');
    expect(relativeUri('dir\\win.py')).toBe('dir/win.py');
    const log = toSarif(scanResult([finding({ column: 0, endColumn: 0, line: 4, endLine: 4 })]));
    expect(log.runs[0].results[0].locations[0].physicalLocation.region).toEqual({ startLine: 4, startColumn: 1, endLine: 4, endColumn: 2 });
    expect(renderSarif(sample())).not.toContain('/tmp/project');
  });

  it('describes a rule that fired but is missing from the rule list', () => {
    const r = scanResult([finding({ code: 'PA999' as string })], { rules: [ruleMeta('PA301')] });
    const log = toSarif(r);
    expect(log.runs[0].tool.driver.rules.map((x: { id: string }) => x.id)).toEqual(['PA301', 'PA999']);
    expect(log.runs[0].results[0].ruleIndex).toBe(1);
  });

  it('is deterministic', () => {
    expect(renderSarif(sample())).toBe(renderSarif(sample()));
  });
});

describe('github', () => {
  it('emits one workflow command per finding with the right level', () => {
    const lines = renderGithub(sample()).trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^::warning file=app\/api\/files\.py,line=7,col=5,endLine=7,endColumn=20,title=PA303 sync_sleep_in_async::/);
    expect(lines[1]).toMatch(/^::error file=app\/api\/files\.py,line=42,col=9,endLine=42,endColumn=31,title=PA301 blocking_io_in_async::/);
    expect(lines[2]).toMatch(/^::error .*title=PA107 query_in_loop::/);
    expect(lines[3]).toMatch(/^::notice .*title=PA303 sync_sleep_in_async \(advisory\)::/);
    expect(lines[4]).toMatch(/^::notice .*title=PA304 string_concat_in_loop::/);
  });

  it("escapes like GitHub's toolkit", () => {
    expect(escapeData('100% done\r\nnext')).toBe('100%25 done%0D%0Anext');
    expect(escapeProperty('a:b,c%d\ne')).toBe('a%3Ab%2Cc%25d%0Ae');
    const out = renderGithub(scanResult([finding({ path: 'odd,dir/x:y.py', message: '50% of\nrows', recommendation: '' })]));
    expect(out).toBe('::error file=odd%2Cdir/x%3Ay.py,line=10,col=5,endLine=10,endColumn=20,title=PA301 blocking_io_in_async::50%25 of%0Arows\n');
  });
});

describe('determinism across input order', () => {
  it('renders the same bytes whatever order the findings arrive in', () => {
    const a = sample();
    const b = sample();
    b.findings = [...b.findings].reverse();
    expect(renderJson(b)).toBe(renderJson(a));
    expect(renderSarif(b)).toBe(renderSarif(a));
    expect(renderGithub(b)).toBe(renderGithub(a));
    expect(renderText(b, { color: false })).toBe(renderText(a, { color: false }));
  });
});
