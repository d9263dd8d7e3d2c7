/**
 * Work that runs once, not once per call: the body of a memoised function (`functools.cache`,
 * `lru_cache`, `cachetools.cached`, Flask-Caching's `memoize`), and the code under a cache
 * guard — `if _engine is None: _engine = ...`, `if not _types: _types.update(...)`,
 * `if key not in _cache: _cache[key] = ...`, or after `if _x is not None: return _x` in a
 * function that then sets `_x` (also nested in `if use_cache:` on a parameter that defaults to
 * `True`, or with such a flag in the same test: `if key in _cache and not refresh:`). A shared
 * cache region counts as such a cache: dogpile.cache's `REGION.get(key)` tested
 * against `NO_VALUE`/`NoValue` and filled with `REGION.set(...)`, or a helper that reads a cache
 * (`read_from_cache(key)`) with one that writes it (`write_to_cache(...)`) on the miss. A caller
 * in a loop or on the event loop pays for it at most once (per key), so effects found there are
 * not propagated to callers.
 */
import type { SyntaxNode } from '../parse/parser.js';
import { ifsOf, type CallInfo, type FileModel } from './model.js';
import { nameThen } from './codeText.js';

/** Library decorators, and a project's own `memoize_*` ones (`memoize_request`, `memoize_redis`). */
const MEMO_DECORATOR = /(^|\.)(lru_cache|cache|cached|memoize(?:_\w+)?|memoized|alru_cache|ttl_cache|lfu_cache|async_cached)$/;

/** The memoising decorator of the function as written (`@cache.memoize(timeout=60)`), or null. */
export function memoDecoratorOf(model: FileModel, fnIndex: number): string | null {
  const fn = fnIndex >= 0 ? model.functions[fnIndex] : undefined;
  const i = fn ? fn.decoratorNames.findIndex((d) => MEMO_DECORATOR.test(d)) : -1;
  if (!fn || i < 0) return null;
  const text = fn.decorators[i]?.replace(/^@\s*/, '').replace(/\s+/g, ' ');
  return text && text.length <= 60 ? `@${text}` : `@${fn.decoratorNames[i]}`;
}

/** Is the function's body memoised by a decorator? */
export function isMemoisedFunction(model: FileModel, fnIndex: number): boolean {
  const fn = fnIndex >= 0 ? model.functions[fnIndex] : undefined;
  return !!fn && fn.decoratorNames.some((d) => MEMO_DECORATOR.test(d));
}

/** An `if` header on one line: `if <condition>:`, the condition up to the line's last `:`. */
const IF_HEADER = /^if\s+(.*):\s*$/;

/**
 * A cache test on the condition's source text — `X`, `not X`, `X is None`, `X is not None`,
 * `k in X`, `k not in X`, `X.get(k) is None`, … — the cache name and whether it means "missing".
 */
function cacheTestText(raw: string): { name: string; missing: boolean } | null {
  const text = /\s\s|[\t\n\r\f\v\u00a0\u2028\u2029\ufeff]/.test(raw) ? raw.replace(/\s+/g, ' ').trim() : raw.trim();
  let m = /^not ([A-Za-z_][\w.]*)$/.exec(text);
  if (m) return { name: m[1]!, missing: true };
  m = /^([A-Za-z_][\w.]*) (is|==) None$/.exec(text);
  if (m) return { name: m[1]!, missing: true };
  m = /^([A-Za-z_][\w.]*) (is not|!=) None$/.exec(text);
  if (m) return { name: m[1]!, missing: false };
  m = /^[\w.()'"[\], ]+ not in ([A-Za-z_][\w.]*)$/.exec(text);
  if (m) return { name: m[1]!, missing: true };
  m = /^[\w.()'"[\], ]+ in ([A-Za-z_][\w.]*)$/.exec(text);
  if (m) return { name: m[1]!, missing: false };
  m = /^([A-Za-z_][\w.]*)\.get\(.*\) is None$/.exec(text);
  if (m) return { name: m[1]!, missing: true };
  // `hasattr(self, "_engine")` / `not hasattr(...)` / `getattr(self, "_engine", None) is None`:
  // the attribute set on first use.
  m = /^(not )?hasattr\(([A-Za-z_][\w.]*), ['"](\w+)['"]\)$/.exec(text);
  if (m) return { name: `${m[2]}.${m[3]}`, missing: !!m[1] };
  m = /^(?:getattr\(([A-Za-z_][\w.]*), ['"](\w+)['"], None\)) (is|==) None$/.exec(text);
  if (m) return { name: `${m[1]}.${m[2]}`, missing: true };
  // dogpile.cache's miss marker: `value is NO_VALUE`, `not isinstance(value, NoValue)`.
  m = /^([A-Za-z_][\w.]*) (is not|!=|is|==) (?:[\w.]*\.)?NO_VALUE$/.exec(text);
  if (m) return { name: m[1]!, missing: m[2] === 'is' || m[2] === '==' };
  m = /^(not )?isinstance\(([A-Za-z_][\w.]*), (?:[\w.]*\.)?NoValue\)$/.exec(text);
  if (m) return { name: m[2]!, missing: !m[1] };
  m = /^([A-Za-z_][\w.]*)$/.exec(text);
  if (m) return { name: m[1]!, missing: false };
  // `if hit := _cache.get(key):` / `if (row := CACHE.get(k)) is not None:` — the body returns the hit.
  // Only a container named for it: `self.repo.get(uid)` in a walrus is a lookup, not a cache.
  m = /^\(?[A-Za-z_]\w* := ([A-Za-z_][\w.]*)\.get\(.*\)\)?(?: is not None)?$/.exec(text);
  if (m && /cache|memo/i.test(m[1]!.split('.').pop()!)) return { name: m[1]!, missing: false };
  return null;
}

/** A name that outlives the call: a module global, or a class or instance attribute. */
function persistent(model: FileModel, name: string, fnBody: string): boolean {
  // A cache read through a helper (`read_from_cache(key)`), stood for by the helper's name.
  if (name.startsWith(CACHE_CALL)) return true;
  // An attribute of an object that lives as long as the application: `self`/`cls`, the ASGI
  // app's `state` (`app.state.engine`, `request.app.state.engine`), Flask's `current_app`.
  if (name.includes('.')) return /^(self|cls|self\.__class__)\.\w+$|^(?:\w+\.)*app\.state\.\w+$|^current_app\.\w+$/.test(name);
  return model.moduleDefs.has(name) || (fnBody.includes('global') && new RegExp(`\\bglobal\\s+(\\w+\\s*,\\s*)*${name}\\b`).test(fnBody));
}

/** Marks a cache read through a helper function (`read_from_cache`) as the cache's name. */
const CACHE_CALL = 'cache-call:';
/** Helpers that read a cache, and those that write one (`write_to_cache`, `cache_set`, `set_cached`). */
const CACHE_READ_CALL = /^\w*(?:cache\w*(?:get|read|lookup|fetch)|(?:get|read|lookup|fetch)\w*cache)\w*$/i;
const CACHE_WRITE_CALL = /(^|[^\w.])\w*(?:cache\w*(?:set|write|put|store|add)|(?:set|write|put|store|add)\w*cache)\w*\s*\(/i;

/** Does `text` fill the cache named `name` (assign it, set a key, or add to it)? */
function fills(text: string, name: string): boolean {
  if (name.startsWith(CACHE_CALL)) return CACHE_WRITE_CALL.test(text);
  if (!text.includes(name)) return false;
  let re = fillPatterns.get(name);
  if (!re) {
    const n = name.replace(/\./g, '\\.');
    if (fillPatterns.size >= 4096) fillPatterns.clear();
    fillPatterns.set(name, (re = new RegExp(`(^|[^\\w.])${n}\\s*(\\[[^\\n=]*\\]\\s*)?=(?!=)|(^|[^\\w.])${n}\\.(update|add|append|extend|setdefault|__setitem__|set|set_multi)\\(`, 'm')));
  }
  return re.test(text);
}

/** Compiled {@link fills} patterns by cache name (the same few names recur across files); bounded. */
const fillPatterns = new Map<string, RegExp>();

interface CacheGuards {
  /** Consequences of `if <cache missing>:` statements that fill the cache: `[start, end)`. */
  filling: [number, number][];
  /**
   * Start of the first top-level `if <cache present>: ... return` of a function that fills the
   * cache after it: a call that starts after it runs only on a miss. Infinity when none.
   */
  returnedFrom: number;
}

/**
 * After a local's name (`nameThen`: sticky, tried where the name ends): `= _engines.get(`, the
 * container read. Found by occurrences of the name: the pattern with the name before it was tried
 * at every offset of the function's text before each `if` that tests a local.
 */
const READ_FROM_CONTAINER = /\s*=\s*([A-Za-z_][\w.]*)\.get\(/y;
/** After a local's name: `= getattr(app.state, "engine", None)`, the attribute read with a default. */
const READ_ATTRIBUTE = /\s*=\s*getattr\(\s*([A-Za-z_][\w.]*)\s*,\s*['"](\w+)['"]\s*,\s*None\s*\)/y;
/** After a local's name: `= read_from_cache(` (or `= await …(`), the function called. */
const READ_THROUGH_CALL = /\s*=\s*(?:await\s+)?([A-Za-z_]\w*)\(/y;

const guardsMemo = new WeakMap<FileModel, Map<number, CacheGuards>>();
/** A function's cache guards, once per function (they were found walking up from every call). */
function cacheGuards(model: FileModel, fnIndex: number, body: SyntaxNode, bodyText: string): CacheGuards {
  let byFn = guardsMemo.get(model);
  if (!byFn) guardsMemo.set(model, (byFn = new Map()));
  let g = byFn.get(fnIndex);
  if (g) return g;
  g = { filling: [], returnedFrom: Infinity };
  const source = model.source;
  const fn = model.functions[fnIndex]!;
  for (const node of ifsOf(model, fnIndex)) {
    if (node.startIndex < body.startIndex) continue;
    // The condition from the header line when it is all there (no WASM call for the many `if`s
    // that test no cache), else from the tree.
    const eol = source.indexOf('\n', node.startIndex);
    const header = IF_HEADER.exec(source.slice(node.startIndex, eol < 0 ? source.length : eol));
    let t: { name: string; missing: boolean } | null;
    if (header && !header[1]!.includes('#')) t = cacheTestText(withoutDefaultFlags(fn, header[1]!));
    else {
      const cond = node.childForFieldName('condition');
      t = cond ? cacheTestText(withoutDefaultFlags(fn, cond.text)) : null;
    }
    // `engine = _engines.get(key)` then `if engine is None:`: the local stands for the cache it was read from.
    if (t && !persistent(model, t.name, bodyText) && /^[A-Za-z_]\w*$/.test(t.name)) {
      const before = source.slice(body.startIndex, node.startIndex);
      const read = nameThen(before, t.name, READ_FROM_CONTAINER);
      const attr = read ? null : nameThen(before, t.name, READ_ATTRIBUTE);
      if (read && persistent(model, read[1]!, bodyText)) t = { name: read[1]!, missing: t.missing };
      else if (attr && persistent(model, `${attr[1]}.${attr[2]}`, bodyText)) t = { name: `${attr[1]}.${attr[2]}`, missing: t.missing };
      else {
        // `value = read_from_cache(key)`: a helper that reads a cache.
        const viaHelper = nameThen(before, t.name, READ_THROUGH_CALL);
        if (viaHelper && CACHE_READ_CALL.test(viaHelper[1]!)) t = { name: `${CACHE_CALL}${viaHelper[1]}`, missing: t.missing };
      }
    }
    if (!t || !persistent(model, t.name, bodyText)) continue;
    const consequence = node.childForFieldName('consequence');
    if (!consequence) continue;
    if (t.missing) {
      if (fills(consequence.text, t.name) || fillsThroughHelper(model, fn, consequence.text, t.name)) g.filling.push([consequence.startIndex, consequence.endIndex]);
    } else if (g.returnedFrom === Infinity && (node.parent?.id === body.id || underDefaultOnFlags(model, fnIndex, node, body))) {
      // A top-level `if <cache present>: ... return` of a function that fills the cache after it.
      const last = consequence.namedChildren[consequence.namedChildCount - 1];
      if (last?.type === 'return_statement' && fills(bodyText.slice(node.endIndex - body.startIndex), t.name)) g.returnedFrom = node.startIndex;
    }
  }
  // `try: return _cache[key]` / `except KeyError: ... _cache[key] = ...`: the handler fills the cache on a miss.
  if (bodyText.includes('KeyError')) {
    for (const t of body.descendantsOfType('try_statement')) {
      const tryBody = t.childForFieldName('body');
      const read = tryBody ? /(?:^|[^\w.])([A-Za-z_][\w.]*)\s*\[/.exec(tryBody.text) : null;
      if (!read || !persistent(model, read[1]!, bodyText)) continue;
      for (const h of t.namedChildren) {
        if (h.type !== 'except_clause' || !/^except\s+\(?\s*KeyError\b/.test(h.text)) continue;
        if (fills(h.text, read[1]!)) g.filling.push([h.startIndex, h.endIndex]);
      }
    }
  }
  byFn.set(fnIndex, g);
  return g;
}

/**
 * Does `text` call a function of this file that fills the cache (`if dsn not in _engines:
 * _init_engine(dsn)` where `_init_engine` ends with `_engines[dsn] = engine`)? A module function
 * called by name, or a method of the same class called on `self`/`cls`.
 */
function fillsThroughHelper(model: FileModel, fn: FileModel['functions'][number], text: string, name: string): boolean {
  for (const m of text.matchAll(/(?:^|[^\w.])(?:(self|cls)\.)?([A-Za-z_]\w*)\s*\(/g)) {
    const onSelf = m[1] !== undefined;
    const helper = model.functions.find((f) => f.name === m[2] && (onSelf ? f.className !== null && f.className === fn.className : f.className === null && f.qualifiedName === f.name));
    if (helper?.body && fills(helper.body.text, name)) return true;
  }
  return false;
}

/**
 * A condition without its conjuncts that hold by default on a parameter (`not ignore_cache`,
 * `not force` for a parameter that defaults to `False`; `use_cache` for one that defaults to
 * `True`): `if key in CACHE and not ignore_cache: return CACHE[key]` is a cache hit unless a
 * caller forces a rebuild, as `underDefaultOnFlags` reads a nested `if use_cache:`.
 */
function withoutDefaultFlags(fn: FileModel['functions'][number], cond: string): string {
  if (!/\band\b/.test(cond) || /\bor\b|[()]\s*and|and\s*[()]/.test(cond.replace(/\([^()]*\)/g, '_'))) return cond;
  const parts = cond.split(/\s+and\s+/).map((p) => p.trim());
  const kept = parts.filter((p) => {
    const m = /^(not\s+)?([A-Za-z_]\w*)$/.exec(p);
    return !m || !fn.params.some((q) => q.name === m[2] && q.defaultText === (m[1] ? 'False' : 'True'));
  });
  return kept.length === 1 ? kept[0]! : cond;
}

/**
 * Is `node` nested in the body of `if` statements, up to the function's body, each testing a
 * parameter that defaults to `True` (`if use_cache:`): the cache is used unless a caller turns
 * it off, so what follows the early return on a hit runs on a miss, by default.
 */
function underDefaultOnFlags(model: FileModel, fnIndex: number, node: SyntaxNode, body: SyntaxNode): boolean {
  const fn = model.functions[fnIndex]!;
  let cur: SyntaxNode = node;
  while (cur.parent && cur.parent.id !== body.id) {
    const block = cur.parent;
    const stmt = block.parent;
    if (block.type !== 'block' || stmt?.type !== 'if_statement' || stmt.childForFieldName('consequence')?.id !== block.id) return false;
    const cond = stmt.childForFieldName('condition')?.text ?? '';
    if (!fn.params.some((p) => p.name === cond && p.defaultText === 'True')) return false;
    cur = stmt;
  }
  return cur.parent?.id === body.id && cur.id !== node.id;
}

/** Does this call run only when a cache is being filled (at most once per key)? */
const bodyTexts = new WeakMap<FileModel, (string | null)[]>();

/** The function's body text when it may test a cache (`None`, `not`, `in`), else null; once per function. */
function cacheBodyText(model: FileModel, fnIndex: number, body: SyntaxNode): string | null {
  let list = bodyTexts.get(model);
  if (!list) bodyTexts.set(model, (list = []));
  if (fnIndex in list) return list[fnIndex]!;
  const text = body.text;
  return (list[fnIndex] = /\bNone\b|\bnot\b|\bin\b|\bKeyError\b|\bhasattr\b|\bNO_VALUE\b/.test(text) ? text : null);
}

export function isMemoisedCall(model: FileModel, call: CallInfo): boolean {
  // Asked by the effects of every family and by several rules about the same call.
  let v = call.memo.memoised;
  if (v === undefined) call.memo.memoised = v = isMemoisedCallUncached(model, call);
  return v;
}

function isMemoisedCallUncached(model: FileModel, call: CallInfo): boolean {
  return runsOnce(model, call.functionIndex, call.start);
}

/**
 * Does the code at source offset `start` of function `fnIndex` run once, not once per call: in a
 * memoised function, or under a cache guard (see the module comment)?
 */
export function runsOnce(model: FileModel, fnIndex: number, start: number): boolean {
  if (fnIndex < 0) return false;
  if (isMemoisedFunction(model, fnIndex)) return true;
  const fn = model.functions[fnIndex]!;
  const body = fn.body;
  const bodyText = body ? cacheBodyText(model, fnIndex, body) : null;
  if (!body || bodyText === null) return false;
  const guards = cacheGuards(model, fnIndex, body, bodyText);
  if (start > guards.returnedFrom) return true;
  for (const [from, to] of guards.filling) if (start >= from && start < to) return true;
  return false;
}
