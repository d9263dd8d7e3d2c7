import { describe, expect, it } from 'vitest';
import { TECHNOLOGIES, TECH_ALIASES, technologiesFor } from '../dist/src/knowledge/sources.js';
import { renderMarkdown } from '../dist/src/report/markdown.js';
import { scanResult } from './helpers/result.js';

describe('knowledge base', () => {
  it('holds only https documentation URLs, each once per technology', () => {
    for (const [key, tech] of Object.entries(TECHNOLOGIES) as [string, { name: string; sources: { title: string; url: string }[] }][]) {
      expect(tech.sources.length, key).toBeGreaterThan(0);
      const urls = tech.sources.map((s) => s.url);
      expect(new Set(urls).size, key).toBe(urls.length);
      for (const s of tech.sources) {
        expect(s.url, key).toMatch(/^https:\/\/[a-z0-9.-]+\.[a-z]{2,}\//);
        expect(s.title.trim().length, key).toBeGreaterThan(0);
      }
    }
    for (const target of Object.values(TECH_ALIASES)) expect(TECHNOLOGIES).toHaveProperty([target as string]);
  });

  it('maps stack keys to technologies in knowledge-base order, resolving aliases', () => {
    expect(technologiesFor(['redis', 'FastAPI', 'psycopg2', 'unknown-thing', 'postgresql'])).toEqual(['fastapi', 'psycopg', 'postgresql', 'redis']);
    expect(technologiesFor(['sqlalchemy', 'asyncpg'])).toEqual(['sqlalchemy', 'sqlalchemy-async', 'asyncpg']);
    expect(technologiesFor(['sqlalchemy'])).toEqual(['sqlalchemy']);
    expect(technologiesFor([])).toEqual([]);
  });

  it("shows the exact key's version before an alias's", () => {
    const context = { root: '.', problems: [], stack: { 'psycopg-pool': { version: '3.2.0', source: 'x' }, psycopg: { version: '3.1.0', source: 'y' } } };
    const md = renderMarkdown(scanResult([], { context: context as never }));
    expect(md).toContain('- **psycopg 3.1.0**');
  });

  it('shows pinned versions bare and ranges in parentheses', () => {
    const stack = { fastapi: { version: '==0.115.0', source: 'r' }, sqlalchemy: { version: '>=2.0,<3', source: 'r' }, alembic: { version: '1.13', source: 'r' } };
    const md = renderMarkdown(scanResult([], { context: { root: '.', problems: [], stack } as never }));
    expect(md).toContain('- **FastAPI 0.115.0**');
    expect(md).toContain('- **SQLAlchemy (>=2.0,<3)**');
    expect(md).toContain('- **Alembic 1.13**');
  });
});
