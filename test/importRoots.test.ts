/**
 * Where absolute imports start in a tree of several projects: the source root of each file and
 * the heads found there or above it, nearest first; the scanned root changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { importPrefixer, importRootsOf } from '../dist/src/semantic/importRoots.js';

const prefixOf = (paths: string[], file: string, dotted: string) => {
  const p = importPrefixer(importRootsOf(paths))(file);
  return p ? p(dotted) : dotted;
};

describe('import roots', () => {
  const monorepo = [
    'services/billing/app/__init__.py',
    'services/billing/app/db.py',
    'services/billing/app/api/__init__.py',
    'services/billing/app/api/routes.py',
    'services/billing/scripts/backfill.py',
    'services/billing/settings.py',
    'services/shipping/app/__init__.py',
    'services/shipping/app/db.py',
    'libs/common/__init__.py',
    'libs/common/clock.py',
  ];

  it("starts a package's imports at its service directory", () => {
    expect(prefixOf(monorepo, 'services/billing/app/api/routes.py', 'app.db.get_session')).toBe('services.billing.app.db.get_session');
    expect(prefixOf(monorepo, 'services/shipping/app/db.py', 'app.db')).toBe('services.shipping.app.db');
    // Only packages: a module beside the service's packages may shadow a library only in a script.
    expect(prefixOf(monorepo, 'services/billing/app/db.py', 'settings.DSN')).toBe('settings.DSN');
  });

  it('lets a script reach the packages of the directory above its own', () => {
    expect(prefixOf(monorepo, 'services/billing/scripts/backfill.py', 'app.db')).toBe('services.billing.app.db');
  });

  it('leaves libraries and what the scanned root holds as they are', () => {
    expect(prefixOf(monorepo, 'services/billing/app/db.py', 'sqlalchemy.orm.Session')).toBe('sqlalchemy.orm.Session');
    // `libs` is a directory of the scanned root: imports of it already start there.
    expect(prefixOf(monorepo, 'services/billing/app/db.py', 'libs.common.clock')).toBe('libs.common.clock');
    expect(prefixOf(monorepo, 'libs/common/clock.py', 'app.db')).toBe('app.db');
  });

  it('changes nothing in a tree with a single project at its root', () => {
    const single = ['app/__init__.py', 'app/db.py', 'app/api/__init__.py', 'app/api/routes.py', 'manage.py'];
    expect(importRootsOf(single).tables).toEqual([]);
    expect(prefixOf(single, 'app/api/routes.py', 'app.db')).toBe('app.db');
  });

  it('follows the module names of a src layout', () => {
    const layout = ['src/py/app/__init__.py', 'src/py/app/db.py', 'src/py/app/routes.py'];
    // `src/` is dropped from module names (`py.app.db`), so the prefix is `py`.
    expect(prefixOf(layout, 'src/py/app/routes.py', 'app.db')).toBe('py.app.db');
    const flat = ['src/app/__init__.py', 'src/app/db.py'];
    expect(prefixOf(flat, 'src/app/db.py', 'app.db')).toBe('app.db');
  });

  it('never lets a module or a folder without __init__.py take a library\'s name', () => {
    // A directory of modules without __init__.py (a script folder, or PEP 420 packages).
    const flat = ['app/services/stripe.py', 'app/services/payments.py', 'services/stripe/webhook.py', 'services/api/app/__init__.py', 'services/api/app/pay.py'];
    expect(prefixOf(flat, 'app/services/payments.py', 'stripe.PaymentIntent')).toBe('stripe.PaymentIntent');
    expect(prefixOf(flat, 'services/api/app/pay.py', 'stripe.Refund')).toBe('stripe.Refund');
  });

  it('does not look above the source root from inside a package', () => {
    const tree = ['services/__init__.py', 'services/stripe/__init__.py', 'services/stripe/hooks.py', 'apps/api/app/__init__.py', 'apps/api/app/pay.py', 'apps/common/__init__.py'];
    expect(prefixOf(tree, 'apps/api/app/pay.py', 'common.x')).toBe('common.x');
  });

  it('keeps no table for folders without packages, however many', () => {
    const many = Array.from({ length: 6000 }, (_, i) => `plugins/p${i}/main.py`);
    expect(importRootsOf(many).tables).toEqual([]);
  });

  it('prefers the nearest directory that has the name', () => {
    const nested = [
      'services/billing/app/__init__.py',
      'services/billing/app/db.py',
      'services/billing/tools/app/__init__.py',
      'services/billing/tools/app/cli.py',
      'services/billing/tools/run.py',
    ];
    expect(prefixOf(nested, 'services/billing/tools/run.py', 'app.cli')).toBe('services.billing.tools.app.cli');
    expect(prefixOf(nested, 'services/billing/app/db.py', 'app.db')).toBe('services.billing.app.db');
  });
});
