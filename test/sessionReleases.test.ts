/** The names a file releases sessions on (discovery/discover.ts `sessionReleases`), read from the text. */
import { describe, expect, it } from 'vitest';
import { sessionReleases } from '../dist/src/discovery/discover.js';

describe('session releases', () => {
  it('takes the whole name before the dot, across white space, and not a leading digit run', () => {
    const src = [
      'db_session.close()',
      'Session .remove()',
      'scoped\n  .remove()',
      'x = 1db.close()',
      'app.db.close()',
      'items.remove(x)',
      'g.pop("db").close()',
      'with SessionLocal() as s:\n    pass',
    ].join('\n');
    expect(sessionReleases(src)).toEqual(['close:?', 'db', 'db_session', 'remove:Session', 'remove:scoped', 'with:SessionLocal']);
  });

  it('reads nothing from a file that releases nothing', () => {
    expect(sessionReleases('def f():\n    return 1\n')).toBeUndefined();
  });
});
