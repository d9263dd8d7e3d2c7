/**
 * Route decorators named like rare HTTP methods (`trace`, `options`, `head`) are routes only when
 * called with a path: `@utils.trace` (a call logger) leaves a function's role alone.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempTree } from './helpers/tmp.js';
import { createParser } from '../dist/src/parse/parser.js';
import { analyzeFile } from '../dist/src/engine/analyzeFile.js';
import { emptyContext } from '../dist/src/discovery/context.js';

const SOURCE = [
  'from fastapi import APIRouter',
  'from app import utils',
  '',
  'router = APIRouter()',
  '',
  '@router.trace("/ping")',
  'def ping():',
  '    return "pong"',
  '',
  '@router.options(path="/items")',
  'def item_options():',
  '    return {}',
  '',
  'class Driver:',
  '    @utils.trace',
  '    def failover(self, volumes):',
  '        return volumes',
  '',
  '    @utils.head',
  '    def first(self, items):',
  '        return items[0]',
  '',
].join('\n');

describe('route roles of rare HTTP method decorators', () => {
  it('takes a called decorator with a path for a route, and a bare one for something else', async () => {
    const dir = tempTree('pa-routes-', { 'app/views.py': SOURCE });
    const parser = await createParser('wasm');
    const summary = analyzeFile('app/views.py', path.join(dir, 'app/views.py'), parser, [], emptyContext(dir)).summary!;
    const roleOf = (name: string) => summary.functions.find((f: { name: string }) => f.name === name)?.role;
    expect(roleOf('ping')).toBe('handler');
    expect(roleOf('item_options')).toBe('handler');
    expect(roleOf('failover')).not.toBe('handler');
    expect(roleOf('first')).not.toBe('handler');
  });

  it('takes Pyramid views for handlers, with the request method when one literal names it', async () => {
    const source = [
      'from pyramid.view import view_config, notfound_view_config',
      'from app.decorators import view_config as cached_config',
      '',
      "@view_config(route_name='orders', renderer='json')",
      'def list_orders(request):',
      '    return request.dbsession.query(Order).all()',
      '',
      "@view_config(route_name='orders', request_method='POST', renderer='json')",
      'def create_order(request):',
      '    return {}',
      '',
      '@notfound_view_config()',
      'def not_found(request):',
      '    return {}',
      '',
      '@cached_config(ttl=30)',
      'def cached(request):',
      '    return {}',
      '',
    ].join('\n');
    const dir = tempTree('pa-pyramid-', { 'app/views.py': source });
    const parser = await createParser('wasm');
    const summary = analyzeFile('app/views.py', path.join(dir, 'app/views.py'), parser, [], emptyContext(dir)).summary!;
    const fnOf = (name: string) => summary.functions.find((f: { name: string }) => f.name === name);
    expect(fnOf('list_orders')?.role).toBe('handler');
    expect(fnOf('list_orders')?.routeKind).toBe('view');
    expect(fnOf('create_order')?.role).toBe('handler');
    expect(fnOf('create_order')?.routeKind).toBe('post');
    expect(fnOf('not_found')?.role).toBe('handler');
    // A project decorator that happens to share the name is not Pyramid's.
    expect(fnOf('cached')?.role).not.toBe('handler');
  });
});
