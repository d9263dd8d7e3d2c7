/**
 * A file summary packed for transfer and storage: its strings in one table (a file names the
 * same methods, modules and effect kinds over and over) and every record as integers in one
 * `Int32Array` per kind.
 *
 * Summaries cross from the workers to the main thread by structured clone and are stored in the
 * incremental cache as v8 blobs. In both, an array of plain objects is written key by key: on a
 * generated 500k-line tree the summaries took 42 MB, half of it property names, and reading them
 * back on the main thread (which runs beside the workers) cost more than a second. Packed, the
 * same summaries are a string table and a few typed arrays, which the clone copies as bytes.
 *
 * `unpackSummary(packSummary(s))` deep-equals `s`, key order included. The bytes that cross
 * threads and sit in the cache are `encodeSummary`'s: the v8 serialisation of the pack, which a
 * structured clone copies as one block and the cache stores as it is.
 */
import crypto from 'node:crypto';
import v8 from 'node:v8';
import type { Effect, FileSummary, SummaryCall, SummaryFunction } from './summary.js';
import type { FunctionRole } from '../semantic/model.js';
import type { ParamUse } from './objects.js';

export interface PackedSummary {
  packed: 1;
  path: string;
  moduleName: string;
  isTestFile: boolean;
  strings: string[];
  /** Pairs of string ids. */
  imports: Int32Array;
  moduleDefs: Int32Array;
  /** {@link FN_WORDS} words per function. */
  functions: Int32Array;
  /** {@link EFFECT_WORDS} words per effect, in function order. */
  effects: Int32Array;
  /** {@link CALL_WORDS} words per call. */
  calls: Int32Array;
  /** Pairs of string ids. */
  exportedTypes: Int32Array;
  suppressions: [number, string[]][];
  entryPoints: FileSummary['entryPoints'];
  /** {@link USE_WORDS} words per parameter use, in function order. */
  paramUses: Int32Array;
  classes: FileSummary['classes'];
  refs: FileSummary['refs'];
  smallConstants: string[];
  routerIncludes?: FileSummary['routerIncludes'];
  mutatedImports?: FileSummary['mutatedImports'];
  scriptCode?: FileSummary['scriptCode'];
  schemaInstances?: FileSummary['schemaInstances'];
}

const FN_WORDS = 14;
const EFFECT_WORDS = 7;
const CALL_WORDS = 14;
const USE_WORDS = 3;
const USES: ParamUse[] = ['call', 'call_loop', 'offload', 'schedule'];

const ROLES: FunctionRole[] = ['handler', 'background', 'init', 'other'];
const F_ASYNC = 1;
const F_GENERATOR = 2;
const C_AWAITED = 1;
const C_OFFLOADED = 2;
const C_IN_LOOP = 4;
const C_WITH_ITEM = 8;
const C_CONDITIONAL = 16;
const C_MEMOISED = 32;
const C_HANDED_ON = 64;
const C_SPAWNED = 128;
const C_IN_HANDLER = 256;

class StringTable {
  readonly list: string[] = [];
  private readonly ids = new Map<string, number>();
  id(s: string): number {
    let i = this.ids.get(s);
    if (i === undefined) {
      i = this.list.length;
      this.list.push(s);
      this.ids.set(s, i);
    }
    return i;
  }
  /** -1 for null. */
  opt(s: string | null): number {
    return s === null ? -1 : this.id(s);
  }
}

export function packSummary(s: FileSummary): PackedSummary {
  const t = new StringTable();
  const imports = new Int32Array(s.imports.length * 2);
  s.imports.forEach(([a, b], i) => {
    imports[2 * i] = t.id(a);
    imports[2 * i + 1] = t.id(b);
  });
  const moduleDefs = Int32Array.from(s.moduleDefs, (d) => t.id(d));
  const effectCount = s.functions.reduce((n, f) => n + f.effects.length, 0);
  const functions = new Int32Array(s.functions.length * FN_WORDS);
  const effects = new Int32Array(effectCount * EFFECT_WORDS);
  const paramUses = new Int32Array(s.functions.reduce((n, f) => n + f.paramUses.length, 0) * USE_WORDS);
  let e = 0;
  let u = 0;
  s.functions.forEach((f, i) => {
    const o = i * FN_WORDS;
    functions[o] = t.id(f.name);
    functions[o + 1] = t.id(f.qualifiedName);
    functions[o + 2] = (f.isAsync ? F_ASYNC : 0) | (f.isGenerator ? F_GENERATOR : 0);
    functions[o + 3] = ROLES.indexOf(f.role);
    functions[o + 4] = ROLES.indexOf(f.effectiveRole);
    functions[o + 5] = t.opt(f.routeKind);
    functions[o + 6] = t.opt(f.className);
    functions[o + 7] = f.parent;
    functions[o + 8] = f.startLine;
    functions[o + 9] = f.endLine;
    functions[o + 10] = f.effects.length;
    functions[o + 11] = t.opt(f.returns);
    functions[o + 12] = f.flags;
    functions[o + 13] = f.paramUses.length;
    for (const [pos, name, use] of f.paramUses) {
      paramUses[u++] = pos;
      paramUses[u++] = t.id(name);
      paramUses[u++] = USES.indexOf(use);
    }
    for (const x of f.effects) {
      const q = e * EFFECT_WORDS;
      effects[q] = t.id(x.kind);
      effects[q + 1] = t.id(x.what);
      effects[q + 2] = x.line;
      effects[q + 3] = x.column;
      effects[q + 4] = x.pending ? t.id(x.pending.typePath) : -1;
      effects[q + 5] = x.pending ? t.id(x.pending.method) : -1;
      effects[q + 6] = x.guard !== undefined ? t.id(x.guard) : -1;
      e++;
    }
  });
  const calls = new Int32Array(s.calls.length * CALL_WORDS);
  s.calls.forEach((c, i) => {
    const o = i * CALL_WORDS;
    calls[o] = t.id(c.calleeText);
    calls[o + 1] = t.opt(c.qualifiedName);
    calls[o + 2] = t.id(c.method);
    calls[o + 3] = c.functionIndex;
    calls[o + 4] = c.line;
    calls[o + 5] = c.column;
    calls[o + 6] = c.endLine;
    calls[o + 7] = c.endColumn;
    calls[o + 8] = (c.awaited ? C_AWAITED : 0) | (c.offloaded ? C_OFFLOADED : 0) | (c.inLoop ? C_IN_LOOP : 0) | (c.withItem ? C_WITH_ITEM : 0) | (c.conditional ? C_CONDITIONAL : 0) | (c.memoised ? C_MEMOISED : 0) | (c.handedOn ? C_HANDED_ON : 0) | (c.spawned ? C_SPAWNED : 0) | (c.inHandler ? C_IN_HANDLER : 0);
    calls[o + 9] = t.opt(c.receiverType);
    calls[o + 10] = c.guard !== undefined ? t.id(c.guard) : -1;
    calls[o + 11] = c.passes !== undefined ? t.id(c.passes) : -1;
    calls[o + 12] = c.named ? t.id(c.named[0]) : -1;
    calls[o + 13] = c.named ? t.id(c.named[1]) : -1;
  });
  const exportedTypes = new Int32Array(s.exportedTypes.length * 2);
  s.exportedTypes.forEach(([a, b], i) => {
    exportedTypes[2 * i] = t.id(a);
    exportedTypes[2 * i + 1] = t.id(b);
  });
  return {
    packed: 1,
    path: s.path,
    moduleName: s.moduleName,
    isTestFile: s.isTestFile,
    strings: t.list,
    imports,
    moduleDefs,
    functions,
    effects,
    calls,
    exportedTypes,
    suppressions: s.suppressions,
    entryPoints: s.entryPoints,
    paramUses,
    classes: s.classes,
    refs: s.refs,
    smallConstants: s.smallConstants,
    ...(s.routerIncludes?.length ? { routerIncludes: s.routerIncludes } : {}),
    ...(s.mutatedImports?.length ? { mutatedImports: s.mutatedImports } : {}),
    ...(s.scriptCode?.length ? { scriptCode: s.scriptCode } : {}),
    ...(s.schemaInstances?.length ? { schemaInstances: s.schemaInstances } : {}),
  };
}

export function isPackedSummary(x: unknown): x is PackedSummary {
  const p = x as PackedSummary | null;
  return (
    !!p && typeof p === 'object' && p.packed === 1 && typeof p.path === 'string' && typeof p.moduleName === 'string' &&
    Array.isArray(p.strings) && Array.isArray(p.suppressions) && Array.isArray(p.entryPoints) && Array.isArray(p.classes) && Array.isArray(p.refs) && Array.isArray(p.smallConstants) && (p.routerIncludes === undefined || Array.isArray(p.routerIncludes)) && (p.mutatedImports === undefined || Array.isArray(p.mutatedImports)) && (p.scriptCode === undefined || Array.isArray(p.scriptCode)) && (p.schemaInstances === undefined || Array.isArray(p.schemaInstances)) &&
    [p.imports, p.moduleDefs, p.functions, p.effects, p.calls, p.exportedTypes, p.paramUses].every((a) => a instanceof Int32Array) &&
    p.functions.length % FN_WORDS === 0 && p.effects.length % EFFECT_WORDS === 0 && p.calls.length % CALL_WORDS === 0
  );
}

/** The summary back as plain objects; throws on a pack whose ids point outside its tables. */
export function unpackSummary(p: PackedSummary): FileSummary {
  const str = p.strings;
  const at = (i: number): string => {
    const s = str[i];
    if (s === undefined) throw new Error(`packed summary of ${p.path}: string id ${i} out of range`);
    return s;
  };
  const opt = (i: number): string | null => (i < 0 ? null : at(i));
  const role = (i: number): FunctionRole => {
    const r = ROLES[i];
    if (r === undefined) throw new Error(`packed summary of ${p.path}: role ${i} out of range`);
    return r;
  };
  const imports: [string, string][] = [];
  for (let i = 0; i < p.imports.length; i += 2) imports.push([at(p.imports[i]!), at(p.imports[i + 1]!)]);
  const moduleDefs = Array.from(p.moduleDefs, at);
  const functions: SummaryFunction[] = [];
  const fw = p.functions;
  const ew = p.effects;
  const uw = p.paramUses;
  let e = 0;
  let u = 0;
  for (let o = 0; o < fw.length; o += FN_WORDS) {
    const effects: Effect[] = [];
    for (let k = fw[o + 10]!; k > 0; k--, e += EFFECT_WORDS) {
      if (e >= ew.length) throw new Error(`packed summary of ${p.path}: effects out of range`);
      const effect: Effect = { kind: at(ew[e]!), what: at(ew[e + 1]!), line: ew[e + 2]!, column: ew[e + 3]! };
      if (ew[e + 4]! >= 0) effect.pending = { typePath: at(ew[e + 4]!), method: at(ew[e + 5]!) };
      if (ew[e + 6]! >= 0) effect.guard = at(ew[e + 6]!);
      effects.push(effect);
    }
    const paramUses: [number, string, ParamUse][] = [];
    for (let k = fw[o + 13]!; k > 0; k--, u += USE_WORDS) {
      const use = USES[uw[u + 2]!];
      if (u >= uw.length || use === undefined) throw new Error(`packed summary of ${p.path}: parameter uses out of range`);
      paramUses.push([uw[u]!, at(uw[u + 1]!), use]);
    }
    functions.push({
      name: at(fw[o]!),
      qualifiedName: at(fw[o + 1]!),
      isAsync: (fw[o + 2]! & F_ASYNC) !== 0,
      role: role(fw[o + 3]!),
      effectiveRole: role(fw[o + 4]!),
      isGenerator: (fw[o + 2]! & F_GENERATOR) !== 0,
      routeKind: opt(fw[o + 5]!),
      className: opt(fw[o + 6]!),
      parent: fw[o + 7]!,
      startLine: fw[o + 8]!,
      endLine: fw[o + 9]!,
      effects,
      returns: opt(fw[o + 11]!),
      flags: fw[o + 12]!,
      paramUses,
    });
  }
  const calls: SummaryCall[] = [];
  const cw = p.calls;
  for (let o = 0; o < cw.length; o += CALL_WORDS) {
    const flags = cw[o + 8]!;
    calls.push({
      calleeText: at(cw[o]!),
      qualifiedName: opt(cw[o + 1]!),
      method: at(cw[o + 2]!),
      functionIndex: cw[o + 3]!,
      line: cw[o + 4]!,
      column: cw[o + 5]!,
      endLine: cw[o + 6]!,
      endColumn: cw[o + 7]!,
      awaited: (flags & C_AWAITED) !== 0,
      offloaded: (flags & C_OFFLOADED) !== 0,
      inLoop: (flags & C_IN_LOOP) !== 0,
      receiverType: opt(cw[o + 9]!),
      withItem: (flags & C_WITH_ITEM) !== 0,
      ...((flags & C_CONDITIONAL) !== 0 ? { conditional: true } : {}),
      ...((flags & C_IN_HANDLER) !== 0 ? { inHandler: true } : {}),
      ...((flags & C_MEMOISED) !== 0 ? { memoised: true } : {}),
      ...((flags & C_HANDED_ON) !== 0 ? { handedOn: true } : {}),
      ...((flags & C_SPAWNED) !== 0 ? { spawned: true } : {}),
      ...(cw[o + 10]! >= 0 ? { guard: at(cw[o + 10]!) } : {}),
      ...(cw[o + 11]! >= 0 ? { passes: at(cw[o + 11]!) } : {}),
      ...(cw[o + 12]! >= 0 ? { named: [at(cw[o + 12]!), at(cw[o + 13]!)] as [string, string] } : {}),
    });
  }
  const exportedTypes: [string, string][] = [];
  for (let i = 0; i < p.exportedTypes.length; i += 2) exportedTypes.push([at(p.exportedTypes[i]!), at(p.exportedTypes[i + 1]!)]);
  return {
    path: p.path,
    moduleName: p.moduleName,
    isTestFile: p.isTestFile,
    imports,
    moduleDefs,
    functions,
    calls,
    exportedTypes,
    suppressions: p.suppressions,
    entryPoints: p.entryPoints,
    classes: p.classes,
    refs: p.refs,
    smallConstants: p.smallConstants,
    ...(p.routerIncludes?.length ? { routerIncludes: p.routerIncludes } : {}),
    ...(p.mutatedImports?.length ? { mutatedImports: p.mutatedImports } : {}),
    ...(p.scriptCode?.length ? { scriptCode: p.scriptCode } : {}),
    ...(p.schemaInstances?.length ? { schemaInstances: p.schemaInstances } : {}),
  };
}

/** A summary as the bytes that cross threads and sit in the cache. */
export function encodeSummary(s: FileSummary): Uint8Array {
  return v8.serialize(packSummary(s));
}

/**
 * The bytes of {@link encodeSummary} and a digest of the summary's content. The bytes cannot be
 * the digest's input: V8 writes an array's elements kind (an empty array as sparse or dense,
 * as the engine happened to build it), so equal summaries can serialize differently from one
 * run to the next. The digest reads the pack field by field, in a fixed order.
 */
export function encodeSummaryWithDigest(s: FileSummary): { bytes: Uint8Array; digest: string } {
  const p = packSummary(s);
  const h = crypto.createHash('sha256');
  h.update(`${p.path}\0${p.moduleName}\0${p.isTestFile ? 1 : 0}\0${p.strings.length}\0`);
  h.update(p.strings.join('\0'));
  for (const a of [p.imports, p.moduleDefs, p.functions, p.effects, p.calls, p.exportedTypes, p.paramUses]) {
    h.update(`\0${a.length}\0`);
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  h.update(JSON.stringify([p.suppressions, p.entryPoints, p.classes, p.refs, p.smallConstants, p.routerIncludes ?? [], p.mutatedImports ?? [], p.scriptCode ?? [], p.schemaInstances ?? []]));
  return { bytes: v8.serialize(p), digest: h.digest('base64') };
}

/** The summary in `bytes` (from {@link encodeSummary}); throws when they are not one. */
export function decodeSummary(bytes: Uint8Array): FileSummary {
  const p: unknown = v8.deserialize(bytes);
  if (!isPackedSummary(p)) throw new Error('not a packed summary');
  return unpackSummary(p);
}
