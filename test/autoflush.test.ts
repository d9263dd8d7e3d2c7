/**
 * A query autoflushes what the session has staged only when the session autoflushes: a project
 * whose every session factory says `autoflush=False` sends a loop's staged rows together at the
 * flush, so a query in the loop does not make PA105's row-by-row INSERTs. Explicit flushes still do.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempTree } from './helpers/tmp.js';
import { scan } from '../dist/src/engine/scan.js';
import { resolveConfig } from '../dist/src/config/config.js';

const FIXTURE = path.resolve(__dirname, '../fixtures/query-no-autoflush');

function treeWith(dbModule: string): string {
  const files: Record<string, string> = { 'requirements.txt': 'sqlalchemy>=2.0\n' };
  for (const rel of ['labels/__init__.py', 'labels/models.py', 'labels/service.py']) files[rel] = fs.readFileSync(path.join(FIXTURE, rel), 'utf8');
  files['labels/db.py'] = dbModule;
  return tempTree('pa-autoflush-', files);
}

async function pa105Lines(dir: string): Promise<number[]> {
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA105'] }, {}, null);
  const { findings } = (await scan(dir, config, { inProcessBytes: Infinity })).result;
  return findings.filter((f: { code: string }) => f.code === 'PA105').map((f: { line: number }) => f.line).sort((a: number, b: number) => a - b);
}

const FACTORY = (kwargs: string) => `from sqlalchemy import create_engine\nfrom sqlalchemy.orm import sessionmaker\n\nengine = create_engine("postgresql+psycopg://x@db/x")\nSessionLocal = sessionmaker(bind=engine${kwargs})\n`;

describe('PA105 and the sessions\' autoflush setting', () => {
  it('takes a query in the loop for a flush only when the project\'s sessions autoflush', async () => {
    const query = fs.readFileSync(path.join(FIXTURE, 'labels/service.py'), 'utf8').split('\n').findIndex((l) => l.includes('# expect: PA210')) + 1;
    const flush = fs.readFileSync(path.join(FIXTURE, 'labels/service.py'), 'utf8').split('\n').findIndex((l) => l.includes('# expect: PA105')) + 1;
    expect(await pa105Lines(treeWith(FACTORY(', autoflush=False')))).toEqual([flush]);
    // The default (autoflush on), and a second factory that leaves it on: the query flushes each row.
    expect(await pa105Lines(treeWith(FACTORY('')))).toEqual([query, flush]);
    expect(await pa105Lines(treeWith(FACTORY(', autoflush=False') + 'ReportSession = sessionmaker(bind=engine)\n'))).toEqual([query, flush]);
  });

  it('lets a one-off script\'s own factory decide for that script only', async () => {
    const dir = treeWith(FACTORY(', autoflush=False'));
    const script = [
      'from sqlalchemy import create_engine, select',
      'from sqlalchemy.orm import sessionmaker',
      '',
      'from labels.models import DocumentLabel',
      '',
      'def main(ids):',
      '    db = sessionmaker(bind=create_engine("postgresql+psycopg://x@db/x"))()',
      '    for i in ids:',
      '        db.add(DocumentLabel(document_id=1, label_id=i))',
      '        db.scalars(select(DocumentLabel).where(DocumentLabel.label_id == i)).first()',
      '    db.commit()',
      '',
    ].join('\n');
    fs.mkdirSync(path.join(dir, 'scripts'));
    fs.writeFileSync(path.join(dir, 'scripts/relabel.py'), script);
    const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA105'] }, {}, null);
    const { findings } = (await scan(dir, config, { inProcessBytes: Infinity })).result;
    const byFile = findings.filter((f: { code: string }) => f.code === 'PA105').map((f: { path: string; line: number }) => `${f.path}:${f.line}`);
    const flush = fs.readFileSync(path.join(FIXTURE, 'labels/service.py'), 'utf8').split('\n').findIndex((l) => l.includes('# expect: PA105')) + 1;
    expect(byFile.sort()).toEqual([`labels/service.py:${flush}`, 'scripts/relabel.py:9']);
  });
});
