/**
 * The incremental cache: `.persist-audit-cache/pack-v1.bin` at the scanned root, one pack file
 * per root rewritten (atomically: temp file + rename) after a scan that changed anything.
 *
 * Layout: 8-byte magic, the u32 lengths of three sections, their CRC-32s, then the
 * sections (in the file: the summaries, the facts, then the index; see `ORDER`): the index (v8-serialised: header, per-file entries without summaries, the context,
 * the last repo-phase result), the summaries (one v8 blob per file of its packed form, see
 * packedSummary.ts, so that unchanged ones are copied, not serialised again) and the discovery
 * facts (a v8 header, then one v8 blob per file: see `factsChunks`). The last two are read and checked
 * only when needed: the summaries when the repo phase must run again, the facts when the context
 * must be discovered again. An unchanged rescan thus reads the small index only.
 *
 * What is stored
 * - per Python file: mtime, size, inode, sha256 of the content, and its {@link FileOutcome}
 *   (findings, summary, stats; never timings), valid only under the pack's `fileKey`:
 *   sha256(tool version + a hash of the compiled code, enabled file-rule codes, severity
 *   overrides, the project context, the root). The parser is not part of it: both bindings give
 *   the same trees.
 * - the project context, valid under `contextKey`: the tool hash, the root, and every walked
 *   file's path, size and mtime (discovery reads only walked files).
 * - per Python file, its discovery facts (or that it has none) with its mtime, size, inode and
 *   migration role, valid under the tool hash, and what it depends on: its own text, also the
 *   modules a constant was looked up in, or nothing sure (it failed). When only Python files
 *   changed (`othersKey`: the non-Python files' stats and the Python files' names hold), the
 *   changed files and those whose lookups tried them are read again; if their facts equal the
 *   recorded ones, the context stands (an edit that touches no model, engine or channel).
 *   Otherwise the context is built again from the others' recorded facts and the changed
 *   files' new ones; facts that looked up a constant in another module, or that failed, are
 *   never reused there.
 *
 * When an entry is trusted (the content-hash policy)
 * - stat fast path: same mtime, size and inode as recorded, and the mtime is older than the scan
 *   that recorded it by more than {@link RACY_MS} — so the file cannot have changed again within
 *   the same timestamp tick after it was read ("racily clean", as git calls it);
 * - otherwise the file is read and its sha256 compared with the recorded one: equal content is a
 *   hit (a touched or checked-out file), anything else is re-analysed;
 * - `PERSIST_AUDIT_CACHE_VERIFY=1` hashes every file, whatever the stat says;
 * - an outcome that depends on other paths (Rule 6's small-file evidence) is trusted only if
 *   those paths still have the size recorded;
 * - discovery facts are trusted on the stat fast path alone (and never in verify mode): a file
 *   whose stat differs is simply read again by the facts pass.
 * A pack that does not deserialise, has the wrong shape or the wrong key is ignored entirely;
 * an entry of the wrong shape is a miss. Nothing in the cache is trusted beyond that.
 */
import { isTestPath } from '../semantic/model.js';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import zlib from 'node:zlib';
import type { ProjectContext } from '../discovery/context.js';
import type { SourceFile } from '../discovery/walk.js';
import type { OneOffKind } from '../analysis/executionContext.js';
import type { FactsKind, FactsRead, FileOutcome, RawFinding } from '../pool/protocol.js';
import type { FileSummary } from '../analysis/summary.js';
import { decodeSummary, encodeSummaryWithDigest } from '../analysis/packedSummary.js';
import type { PythonFactsResult } from '../discovery/discover.js';
import type { InternalError } from '../types.js';
import { pathState } from '../engine/analyzeFile.js';
import { TOOL_VERSION } from '../version.js';

export const CACHE_DIR = '.persist-audit-cache';
const PACK = 'pack-v1.bin';
const FORMAT = 'persist-audit-cache/9';
const MAGIC = Buffer.from('PACACHE4', 'latin1');
/**
 * Three sections (index, summaries, discovery facts): their lengths, then their CRC-32s. The
 * checksum guards against a damaged or half-written file, not against tampering (whoever can
 * write the cache can write the code it audits); sha256 over the 130 MB of a 2M-line tree's
 * pack cost 0.25 s to read it and as much to write it.
 */
const SECTIONS = 3;
const INDEX = 0;
const SUMMARIES = 1;
const FACTS = 2;
/**
 * Where the sections lie in the file: the summaries and the facts first, the index last. The
 * summaries (96 MB on a 2M-line tree) are final once the per-file phase is over, so they are
 * written then and their bytes dropped, before the repo phase's own peak; the index, which holds
 * the repo phase's result, follows at the end.
 */
const ORDER = [SUMMARIES, FACTS, INDEX];
const DIGEST = 4;
const HEAD = MAGIC.length + 4 * SECTIONS + DIGEST * SECTIONS;
/** An mtime this close to (or after) the recording scan's start is not trusted on its own. */
export const RACY_MS = 2000;

/** [mtimeMs, size, ino, sha256 hex, outcome without its summary] */
type Entry = [number, number, number, string, FileOutcome];

/**
 * A Python file's discovery facts as recorded: under its stat and migration role, what the
 * result depends on, and the result's v8 bytes (null: the file gave none). Only `self` results
 * are reused; `external` and `problem` ones are kept to tell, on a rescan, whether they changed.
 */
interface FactsRecord {
  stat: [mtimeMs: number, size: number, ino: number];
  migration: boolean;
  kind: FactsKind;
  /** `external`: the paths its constant lookups tried. */
  deps: string[] | null;
  blob: Uint8Array | null;
}

/**
 * The repo phase's result and the keys it is valid under: `key`, every file's content (a warm
 * rescan); `summaryKey`, every file's summary and per-file finding lines (a rescan whose edits
 * left every summary as it was: the repo phase would compute the same, but for the text of the
 * lines of the edited files, read again).
 */
interface RepoRecord {
  key: string;
  summaryKey?: string;
  result: RepoResult;
}

/** The repo phase's own output, reusable when its inputs (every summary, the context, the rules) are unchanged. */
export interface RepoResult {
  findings: RawFinding[];
  internalErrors: InternalError[];
  /** The execution context of every finding's line that runs only once: `[path, line, kind, evidence]`. */
  contexts: [string, number, OneOffKind | 'background' | 'admin', string][];
  /** Lines in a coroutine that only ever runs on an event loop of its own: `[path, line, evidence]`. */
  privateLoops?: [string, number, string][];
  /** Lines in a function nothing in the repo calls (a framework's entry point): `[path, line]`. */
  entries?: [string, number][];
  /** Calls in a loop over a handful of constants another module declares: `[path, line, column, the constant]`. */
  fixedLoops?: [string, number, number, string][];
}

interface Pack {
  format: string;
  /** When the scan that wrote the pack started (ms since epoch). */
  scanStart: number;
  fileKey: string;
  contextKey: string;
  /** The key of what the context depends on besides the Python files' facts (see {@link ScanCache.cachedContext}); null when not sure. */
  othersKey: string | null;
  context: ProjectContext | null;
  files: Map<string, Entry>;
  repo: RepoRecord | null;
  /** Loads the discovery facts per Python file, valid under the tool hash they were recorded with (null when unreadable). */
  facts: () => { tool: string; entries: Map<string, FactsRecord> } | null;
  /** The facts section as stored, digest checked: written back as is when discovery did not run. */
  factsRaw: () => Buffer | null;
  /** Loads the summaries section: each file's summary as its own v8 bytes (null when the section is unreadable). */
  summaries: () => Map<string, Buffer> | null;
}

export interface CacheStats {
  hits: number;
  /** Hits confirmed by reading and hashing the file (stat differed, racy, or verify mode). */
  hashed: number;
  misses: number;
  contextHit: boolean;
  /** Python files whose discovery facts (or their absence) came from the cache when the context was rediscovered. */
  factsReused: number;
  /** The context was kept: only Python files changed, and their facts read again equal the recorded ones. */
  contextKept: boolean;
  /**
   * The repo phase's last result was reused: `content`, no file changed; `summaries`, the files
   * that changed left every summary as it was (see `summariesKey`); null when it ran.
   */
  repoKept: 'content' | 'summaries' | null;
  wrote: boolean;
}

export interface LookupResult {
  hits: FileOutcome[];
  misses: SourceFile[];
}

/** What the cache keeps of a file's stat. */
type FileStat = Pick<fs.Stats, 'mtimeMs' | 'size' | 'ino'>;

export class ScanCache {
  readonly stats: CacheStats = { hits: 0, hashed: 0, misses: 0, contextHit: false, factsReused: 0, contextKept: false, repoKept: null, wrote: false };
  private readonly old: Pack | null;
  private readonly scanStart = Date.now();
  private readonly next = new Map<string, Entry>();
  /** Each file's summary bytes: fresh from a worker, or carried over from the old pack. */
  private readonly nextSummaries = new Map<string, Uint8Array>();
  private readonly nextFacts = new Map<string, FactsRecord>();
  /** Whether discovery ran this scan; if not (context cached: no file changed), the old facts stand. */
  private factsLooked = false;
  private repo: RepoRecord | null = null;
  private readonly statByRel = new Map<string, FileStat | null>();
  private toolHash = toolFingerprint();
  private fileKey = '';
  private contextKey = '';
  private othersKey: string | null = null;
  /** The files `quickContext` asked to read again. */
  private quickFiles: string[] | null = null;
  private context: ProjectContext | null = null;
  private changed = false;
  private readonly verifyAll = process.env.PERSIST_AUDIT_CACHE_VERIFY === '1';

  constructor(
    private readonly root: string,
    private readonly dir: string,
    private readonly notice: (message: string) => void = () => {},
  ) {
    this.old = readPack(path.join(dir, PACK));
  }

  /** Opens the cache of `root` (or of `dir` when given: tests and bench). */
  static open(root: string, notice?: (message: string) => void, dir?: string): ScanCache {
    return new ScanCache(root, dir ?? path.join(root, CACHE_DIR), notice);
  }

  /**
   * Folds what every file's analysis depends on beyond its own text and the context (where the
   * tree's imports start: semantic/importRoots.ts) into the tool hash, so that every entry made
   * under another layout is a miss. Call before anything is looked up.
   */
  setLayout(layout: string): void {
    this.toolHash = crypto.createHash('sha256').update(toolFingerprint()).update('\0').update(layout).digest('hex');
  }

  /** The cached project context when no walked file changed since it was discovered. */
  cachedContext(python: SourceFile[], others: string[]): ProjectContext | null {
    // The walk's stat of each Python file serves: taken earlier than ours would be, it is as safe
    // (a change after it moves the mtime on), and a 2M-line tree's 31k stats cost ~0.3 s.
    for (const f of python) {
      if (f.mtimeMs !== undefined && f.ino !== undefined && !this.statByRel.has(f.rel)) this.statByRel.set(f.rel, { mtimeMs: f.mtimeMs, size: f.size, ino: f.ino });
    }
    const h = crypto.createHash('sha256').update(this.toolHash).update('\0').update(this.root);
    // The same over the non-Python files, and only the names of the Python ones: when it holds,
    // the context can change only through the Python files' facts (see `quickContext`).
    const o = crypto.createHash('sha256').update(this.toolHash).update('\0').update(this.root);
    let racy = false;
    let racyOthers = false;
    const isPython = new Set(python.map((f) => f.rel));
    const all = [...isPython, ...others].sort();
    for (const rel of all) {
      const st = this.stat(rel);
      const py = isPython.has(rel);
      h.update('\0').update(rel).update('\0');
      o.update('\0').update(rel).update(py ? '\0py' : '\0');
      if (!st) {
        h.update('missing');
        if (!py) o.update('missing');
        continue;
      }
      const state = `${st.size}:${st.mtimeMs}:${st.ino}`;
      h.update(state);
      if (!py) o.update(state);
      if (this.old && st.mtimeMs >= this.old.scanStart - RACY_MS) {
        racy = true;
        if (!py) racyOthers = true;
      }
    }
    this.contextKey = h.digest('hex');
    this.othersKey = racyOthers ? null : o.digest('hex');
    if (!racy && this.old?.context && this.old.contextKey === this.contextKey) {
      this.stats.contextHit = true;
      this.context = this.old.context;
      return this.old.context;
    }
    return null;
  }

  /**
   * When only Python files changed since the last scan (the other files and the set of Python
   * files are as recorded), the files whose discovery facts must be read again to tell whether
   * the context changed: the changed files, and those whose constant lookups tried one of them.
   * Null when the shortcut does not apply; then the context is discovered again.
   */
  quickContext(python: SourceFile[]): { files: SourceFile[]; migration: (rel: string) => boolean } | null {
    const old = this.old;
    if (!old?.context || this.verifyAll || !this.othersKey || old.othersKey !== this.othersKey) return null;
    const stored = old.facts();
    if (!stored || stored.tool !== this.toolHash || stored.entries.size !== python.length) return null;
    const changed = new Set<string>();
    for (const f of python) {
      const rec = stored.entries.get(f.rel);
      if (!rec) return null;
      const st = this.stat(f.rel);
      if (!st) return null;
      if (!this.statHolds(rec.stat, st)) changed.add(f.rel);
    }
    const files = python.filter((f) => changed.has(f.rel) || stored.entries.get(f.rel)!.deps?.some((d) => changed.has(d)));
    this.quickFiles = files.map((f) => f.rel);
    return { files, migration: (rel) => stored.entries.get(rel)?.migration ?? false };
  }

  /**
   * After {@link quickContext}: the recorded context when every file read again gave the facts
   * recorded for it (and depends on what it depended on), else null. The files read again are
   * recorded under their new stat.
   */
  keepContext(results: PythonFactsResult[], read: FactsRead[]): ProjectContext | null {
    const stored = this.old?.facts();
    if (!stored || !this.old?.context) return null;
    const byFile = new Map(results.map((r) => [r.file, r]));
    const fresh = new Map<string, FactsRecord>();
    for (const [rel, kind, deps] of read) {
      const rec = stored.entries.get(rel);
      if (!rec || rec.kind !== kind || JSON.stringify(rec.deps ?? null) !== JSON.stringify(deps ?? null)) return null;
      const r = byFile.get(rel);
      // Compared as JSON: v8's bytes for the same value may differ (a double or a small integer).
      const before = rec.blob ? factsOf(rel, rec.blob) : null;
      if (before === undefined || JSON.stringify(before) !== JSON.stringify(r ?? null)) return null;
      const st = this.stat(rel);
      if (!st) return null;
      fresh.set(rel, { ...rec, stat: [st.mtimeMs, st.size, st.ino], blob: r ? v8.serialize(r) : null });
    }
    if (fresh.size !== read.length || this.quickFiles?.some((rel) => !fresh.has(rel))) return null;
    for (const [rel, rec] of stored.entries) this.nextFacts.set(rel, fresh.get(rel) ?? rec);
    this.factsLooked = true;
    this.changed = true;
    this.stats.contextKept = true;
    return this.old.context;
  }

  /**
   * When the context must be rediscovered: the discovery facts of the Python files that did not
   * change (same stat as recorded, not racy, same migration role), and the files to read again.
   * Only facts that depend on their own file's text are reused (see {@link storeFacts}).
   */
  cachedFacts(files: SourceFile[], isMigration: (rel: string) => boolean): { reused: PythonFactsResult[]; missing: SourceFile[] } {
    this.factsLooked = true;
    this.nextFacts.clear();
    const reused: PythonFactsResult[] = [];
    const missing: SourceFile[] = [];
    const stored = this.old?.facts() ?? null;
    const table = stored && stored.tool === this.toolHash ? stored.entries : null;
    for (const f of files) {
      const rec = table?.get(f.rel);
      const st = rec ? this.stat(f.rel) : null;
      const ok = rec && st && rec.kind === 'self' && !this.verifyAll && this.statHolds(rec.stat, st) && rec.migration === isMigration(f.rel);
      const result = ok && rec.blob ? factsOf(f.rel, rec.blob) : null;
      if (ok && result !== undefined) {
        if (result) reused.push(result);
        this.nextFacts.set(f.rel, rec);
      } else {
        missing.push(f);
      }
    }
    this.stats.factsReused = files.length - missing.length;
    if (missing.length || table?.size !== this.nextFacts.size) this.changed = true;
    return { reused, missing };
  }

  /**
   * Records the facts pass's results for the files it read, under the stat taken before the pass
   * (in {@link cachedContext}), with what each depends on. The bytes are a copy: discovery goes on
   * to build the context from the same objects.
   */
  storeFacts(results: PythonFactsResult[], read: FactsRead[], isMigration: (rel: string) => boolean): void {
    this.factsLooked = true;
    const byFile = new Map(results.map((r) => [r.file, r]));
    for (const [rel, kind, deps] of read) {
      const st = this.stat(rel);
      if (!st) continue;
      const r = byFile.get(rel);
      this.nextFacts.set(rel, { stat: [st.mtimeMs, st.size, st.ino], migration: isMigration(rel), kind, deps: deps ?? null, blob: r ? v8.serialize(r) : null });
    }
    this.changed = true;
  }

  /** Sets the key every file entry is valid under; call once the context is known. */
  setKey(parts: { codes: string[]; severity: Record<string, string>; context: ProjectContext }): void {
    this.context = parts.context;
    const severity = Object.entries(parts.severity).sort(([a], [b]) => (a < b ? -1 : 1));
    this.fileKey = crypto
      .createHash('sha256')
      .update(JSON.stringify([FORMAT, this.toolHash, this.root, [...parts.codes].sort(), severity, parts.context]))
      .digest('hex');
    if (!this.old || this.old.fileKey !== this.fileKey || this.old.contextKey !== this.contextKey) this.changed = true;
  }

  /** Splits the files into valid cached outcomes and files to analyse. */
  lookup(files: SourceFile[]): LookupResult {
    const hits: FileOutcome[] = [];
    const misses: SourceFile[] = [];
    const table = this.old && this.old.fileKey === this.fileKey ? this.old.files : null;
    for (const f of files) {
      this.stat(f.rel); // before any worker reads it: see store()
      const entry = table?.get(f.rel);
      const hit = entry ? this.validate(f, entry) : null;
      if (hit) {
        hits.push({ ...hit[4], hash: hit[3] });
        this.next.set(f.rel, hit);
        if (hit !== entry) this.changed = true;
      } else {
        misses.push(f);
        this.changed = true;
      }
    }
    if (table && table.size !== this.next.size) this.changed = true; // deleted files
    this.stats.hits = hits.length;
    this.stats.misses = misses.length;
    return { hits, misses };
  }

  /**
   * Records freshly analysed outcomes (with their content hash) for the next scan, under the stat
   * taken before the worker read the file: a change after that stat moves the mtime on, so the
   * next scan hashes the file instead of trusting the stat.
   */
  store(outcomes: FileOutcome[]): void {
    for (const o of outcomes) {
      const hash = o.hash;
      if (!hash || o.internalErrors.length) continue; // never cache a failure
      const st = this.stat(o.path);
      if (!st) continue;
      const { ruleMs: _r, stageMs: _s, hash: _h, summary, summaryBytes, ...kept } = o;
      // The summary's digest (see `encodeSummaryWithDigest`): the worker's, or made here for an
      // outcome of the main thread's pass. None known for bytes that came without one.
      let bytes = summaryBytes ?? null;
      if (!bytes && summary) {
        const encoded = encodeSummaryWithDigest(summary);
        bytes = encoded.bytes;
        o.summaryHash = encoded.digest;
      } else if (!bytes) o.summaryHash = '';
      if (o.summaryHash !== undefined) kept.summaryHash = o.summaryHash;
      this.next.set(o.path, [st.mtimeMs, st.size, st.ino, hash, kept]);
      if (bytes) this.nextSummaries.set(o.path, bytes);
      this.changed = true;
    }
  }

  /**
   * The hits whose summary the old pack does not hold, without reading any summary: the caller
   * analyses those files again before it decides whether the repo phase must run.
   */
  missingSummaries(hits: FileOutcome[]): Set<string> {
    const missing = new Set<string>();
    const table = this.loadOldSummaries();
    for (const o of hits) if (!table?.has(o.path) && hasSummary(o)) missing.add(o.path);
    return this.forget(missing);
  }

  /** Hits whose summary is missing are analysed again: out of the next pack, and counted as misses. */
  private forget(missing: Set<string>): Set<string> {
    for (const rel of missing) this.next.delete(rel);
    if (missing.size) this.changed = true;
    this.stats.hits -= missing.size;
    this.stats.misses += missing.size;
    return missing;
  }

  /**
   * The key of the repo phase's inputs by what they are, not by the files' bytes: every file's
   * summary (its hash) and the lines of its per-file findings (whose execution contexts the
   * repo phase looks up), with the context and the rules. Null when an outcome has no summary
   * hash (an outcome this cache did not store).
   */
  summariesKey(outcomes: FileOutcome[], repoCodes: string[]): string | null {
    return this.inputsKey(outcomes, repoCodes, (o) => (o.summaryHash === undefined ? null : `${o.summaryHash}\0${o.findings.map((f) => f.line).join(',')}`));
  }

  /** A key of the repo phase's inputs: the context and the rules, then `part` of each file (null: no key). */
  private inputsKey(outcomes: FileOutcome[], repoCodes: string[], part: (o: FileOutcome) => string | null | undefined): string | null {
    const h = crypto.createHash('sha256').update(this.fileKey).update('\0').update(JSON.stringify([...repoCodes].sort()));
    for (const o of outcomes) {
      const p = part(o);
      if (!p) return null;
      h.update('\0').update(o.path).update('\0').update(p);
    }
    return h.digest('hex');
  }

  /** The repo phase's result recorded under the summaries' key, if any (see {@link summariesKey}). */
  cachedRepoBySummaries(summaryKey: string | null): RepoResult | null {
    const r = this.old?.repo;
    if (!summaryKey || !r || r.summaryKey !== summaryKey) return null;
    if (!validRepoResult(r.result)) return null;
    this.stats.repoKept = 'summaries';
    return r.result;
  }

  /**
   * Gives cached hits their summaries (for the repo phase). Returns the paths whose summary
   * could not be loaded: the caller analyses those files again.
   */
  attachSummaries(hits: FileOutcome[]): Set<string> {
    const missing = new Set<string>();
    const table = this.loadOldSummaries();
    for (const o of hits) {
      const raw = table?.get(o.path);
      const s = raw ? summaryOf(raw) : null;
      if (s && s.path === o.path) {
        o.summary = s;
        this.nextSummaries.set(o.path, raw!);
      } else if (hasSummary(o)) missing.add(o.path);
    }
    return this.forget(missing);
  }

  /** The key of the repo phase's inputs: every file's content, the context, the rules. */
  repoKey(outcomes: FileOutcome[], repoCodes: string[]): string | null {
    return this.inputsKey(outcomes, repoCodes, (o) => o.hash);
  }

  /** The repo phase's result recorded under `key`, if any. */
  cachedRepo(key: string | null): RepoResult | null {
    if (!key || !this.old?.repo || this.old.repo.key !== key) return null;
    const r = this.old.repo.result;
    if (!validRepoResult(r)) return null;
    this.stats.repoKept = 'content';
    this.repo = this.old.repo;
    return r;
  }

  setRepo(key: string | null, result: RepoResult, summaryKey?: string | null): void {
    if (!key) return;
    this.repo = summaryKey ? { key, summaryKey, result } : { key, result };
    this.changed = true;
  }

  /** The pack being written: its temporary file, open, with the summaries and facts sections in it. */
  private early: { tmp: string; fd: number; writer: SectionWriter; head: Buffer } | null = null;
  /** Why the pack could not be written, once that is known. */
  private writeError: string | null = null;

  /**
   * Writes the summaries and facts sections of the next pack now, when anything changed, and lets
   * go of their bytes: once the per-file phase is over they are final, and the repo phase that
   * follows has its own peak. `save` adds the index and moves the file into place.
   */
  writeSummaries(): void {
    if (!this.changed || this.early || this.writeError) return;
    // Entries whose summary is neither fresh nor attached keep the one in the old pack.
    const pending = [...this.next.keys()].filter((rel) => !this.nextSummaries.has(rel));
    if (pending.length) {
      const old = this.loadOldSummaries();
      for (const rel of pending) {
        const s = old?.get(rel);
        if (s) this.nextSummaries.set(rel, s);
      }
    }
    // Discovery did not run (the context was cached: no walked file changed): the old facts stand.
    const oldFacts = !this.factsLooked ? this.old?.factsRaw() : null;
    const facts = oldFacts ? [oldFacts] : factsChunks(this.toolHash, this.nextFacts);
    const file = path.join(this.dir, PACK);
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    let fd: number | null = null;
    try {
      fs.mkdirSync(this.dir, { recursive: true });
      const ignore = path.join(this.dir, '.gitignore');
      if (!fs.existsSync(ignore)) fs.writeFileSync(ignore, '# written by persist-audit\n*\n');
      fd = fs.openSync(tmp, 'w');
      // The sections are written after the head's place, each checksummed as it goes; the head
      // (their lengths and checksums) last. The summaries' bytes are written file by file: on
      // the 2M-line tree, building the section whole (and then the whole pack) held another
      // 75-200 MB at the scan's peak.
      const head = Buffer.alloc(HEAD);
      MAGIC.copy(head);
      const writer = new SectionWriter(fd, HEAD);
      for (const [i, chunks] of [[SUMMARIES, summaryChunks(this.nextSummaries)], [FACTS, facts]] as const) {
        const { length, digest } = writer.section(chunks);
        head.writeUInt32LE(length, MAGIC.length + 4 * i);
        head.writeUInt32LE(digest, MAGIC.length + 4 * SECTIONS + DIGEST * i);
      }
      this.early = { tmp, fd, writer, head };
    } catch (err) {
      if (fd !== null) fs.closeSync(fd);
      removeQuietly(tmp);
      this.writeError = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    }
    this.nextSummaries.clear();
    this.oldSummaries = null;
  }

  /** Writes the pack atomically when anything changed; a read-only tree only costs a notice. */
  save(): void {
    if (!this.changed) return;
    this.writeSummaries();
    const early = this.early;
    this.early = null;
    if (!early) {
      this.notice(`cache not written (${this.writeError ?? 'unknown error'}); the scan itself is complete`);
      return;
    }
    try {
      const index = v8.serialize({
        format: FORMAT,
        scanStart: this.scanStart,
        fileKey: this.fileKey,
        contextKey: this.contextKey,
        othersKey: this.othersKey,
        context: this.context,
        files: [...this.next],
        repo: this.repo,
      });
      try {
        const { length, digest } = early.writer.section([index]);
        early.head.writeUInt32LE(length, MAGIC.length + 4 * INDEX);
        early.head.writeUInt32LE(digest, MAGIC.length + 4 * SECTIONS + DIGEST * INDEX);
        fs.writeSync(early.fd, early.head, 0, HEAD, 0);
      } finally {
        fs.closeSync(early.fd);
      }
      fs.renameSync(early.tmp, path.join(this.dir, PACK));
      this.stats.wrote = true;
    } catch (err) {
      removeQuietly(early.tmp);
      this.notice(`cache not written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the scan itself is complete`);
    }
  }

  /** A scan that stops before `save`: the half-written pack goes. */
  discard(): void {
    const early = this.early;
    this.early = null;
    if (!early) return;
    try {
      fs.closeSync(early.fd);
    } catch {
      // already closed
    }
    removeQuietly(early.tmp);
  }

  private oldSummaries: Map<string, Buffer> | null | undefined;
  private loadOldSummaries(): Map<string, Buffer> | null {
    if (this.oldSummaries === undefined) this.oldSummaries = this.old ? this.old.summaries() : null;
    return this.oldSummaries;
  }

  private stat(rel: string): FileStat | null {
    let st = this.statByRel.get(rel);
    if (st === undefined) {
      try {
        st = fs.statSync(path.join(this.root, rel));
      } catch {
        st = null;
      }
      this.statByRel.set(rel, st);
    }
    return st;
  }

  /**
   * The stat fast path: the file has the mtime, size and inode recorded, and that mtime is older
   * than the recording scan by more than {@link RACY_MS}.
   */
  private statHolds(recorded: readonly [number, number, number, ...unknown[]], st: FileStat): boolean {
    return recorded[0] === st.mtimeMs && recorded[1] === st.size && recorded[2] === st.ino && recorded[0] < (this.old?.scanStart ?? 0) - RACY_MS;
  }

  /** The entry to keep when `entry` is still valid for `f` (possibly with a fresher stat), else null. */
  private validate(f: SourceFile, entry: Entry): Entry | null {
    if (!validEntry(f.rel, entry)) return null;
    const st = this.stat(f.rel);
    if (!st) return null;
    let result: Entry | null = null;
    const unchanged = this.statHolds(entry, st);
    if (unchanged && !this.verifyAll) {
      result = entry;
    } else {
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(path.join(this.root, f.rel));
      } catch {
        return null;
      }
      this.stats.hashed++;
      if (sha256(bytes) !== entry[3]) return null;
      result = unchanged ? entry : [st.mtimeMs, st.size, st.ino, entry[3], entry[4]];
    }
    for (const [dep, size] of result[4].deps ?? []) {
      if (pathState(path.join(this.root, dep)) !== size) return null;
    }
    return result;
  }
}

/** CRC-32 (zlib's), continuing from `crc`: zlib's own from Node 20.15, a table in JS before. */
const crc32: (data: Uint8Array, crc?: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (data, crc = 0) => zlib.crc32(data, crc) : jsCrc32;

let crcTable: Uint32Array | null = null;
function jsCrc32(data: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Exported for the tests: the JS fallback gives zlib's value. */
export const crc32ForTest = { zlib: crc32, js: jsCrc32 };

function removeQuietly(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch {
    // nothing to clean
  }
}

export function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function readPack(file: string): Pack | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null; // no cache yet
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(HEAD);
    if (size < HEAD || fs.readSync(fd, head, 0, HEAD, 0) !== HEAD) return null;
    if (!head.subarray(0, MAGIC.length).equals(MAGIC)) return null;
    const lengths = Array.from({ length: SECTIONS }, (_, i) => head.readUInt32LE(MAGIC.length + 4 * i));
    const digests = lengths.map((_, i) => head.readUInt32LE(MAGIC.length + 4 * SECTIONS + DIGEST * i));
    if (HEAD + lengths.reduce((a, b) => a + b, 0) !== size) return null; // truncated or grown: not ours
    const offsetOf = (i: number) => HEAD + ORDER.slice(0, ORDER.indexOf(i)).reduce((a, j) => a + lengths[j]!, 0);
    const indexLen = lengths[INDEX]!;
    const indexBuf = Buffer.allocUnsafe(indexLen);
    if (fs.readSync(fd, indexBuf, 0, indexLen, offsetOf(INDEX)) !== indexLen) return null;
    if (crc32(indexBuf) !== digests[INDEX]) return null;
    /** Section `i` read from the file and checked against its digest; null when it is not what was written. */
    const section = (i: number): Buffer | null => {
      try {
        const at = offsetOf(i);
        const buf = Buffer.allocUnsafe(lengths[i]!);
        const fdi = fs.openSync(file, 'r');
        try {
          if (fs.readSync(fdi, buf, 0, buf.length, at) !== buf.length) return null;
        } finally {
          fs.closeSync(fdi);
        }
        return crc32(buf) === digests[i] ? buf : null;
      } catch {
        return null;
      }
    };
    const p = v8.deserialize(indexBuf) as Record<string, unknown>;
    if (
      !p || typeof p !== 'object' || p.format !== FORMAT || typeof p.scanStart !== 'number' ||
      typeof p.fileKey !== 'string' || typeof p.contextKey !== 'string' || !Array.isArray(p.files)
    ) {
      return null;
    }
    const files = new Map<string, Entry>();
    for (const item of p.files as unknown[]) {
      if (Array.isArray(item) && item.length === 2 && typeof item[0] === 'string') files.set(item[0], item[1] as Entry);
    }
    const context = p.context && typeof p.context === 'object' && typeof (p.context as ProjectContext).root === 'string' ? (p.context as ProjectContext) : null;
    const r = p.repo as Pack['repo'];
    const repo = r && typeof r === 'object' && typeof r.key === 'string' && r.result && typeof r.result === 'object' ? r : null;
    const summaries = (): Map<string, Buffer> | null => {
      const buf = section(SUMMARIES);
      return buf ? decodeSummaries(buf) : null;
    };
    let factsBuf: Buffer | null | undefined;
    const factsRaw = (): Buffer | null => (factsBuf === undefined ? (factsBuf = section(FACTS)) : factsBuf);
    let factsMemo: ReturnType<Pack['facts']> | undefined;
    const facts = (): ReturnType<Pack['facts']> => (factsMemo === undefined ? (factsMemo = readFacts(factsRaw())) : factsMemo);
    const othersKey = typeof p.othersKey === 'string' ? p.othersKey : null;
    return { format: FORMAT, scanStart: p.scanStart, fileKey: p.fileKey, contextKey: p.contextKey, othersKey, context, files, repo, facts, factsRaw, summaries };
  } catch {
    return null; // corrupt: start afresh
  } finally {
    fs.closeSync(fd);
  }
}

/** The shape a cached entry must have before anything in it is used. */
function validEntry(rel: string, e: unknown): e is Entry {
  if (!Array.isArray(e) || e.length !== 5) return false;
  const [mtime, size, ino, hash, o] = e as unknown[];
  if (typeof mtime !== 'number' || typeof size !== 'number' || typeof ino !== 'number') return false;
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) return false;
  if (!o || typeof o !== 'object') return false;
  const out = o as Record<string, unknown>;
  if (out.path !== rel || typeof out.lines !== 'number' || typeof out.bytes !== 'number' || typeof out.parseError !== 'boolean') return false;
  if (!Array.isArray(out.findings) || !Array.isArray(out.internalErrors)) return false;
  if (out.findings.some((x) => !x || typeof x !== 'object' || (x as { path?: unknown }).path !== rel)) return false;
  if (out.summary !== undefined && (!out.summary || typeof out.summary !== 'object' || (out.summary as { path?: unknown }).path !== rel)) return false;
  if (out.deps !== undefined && !(Array.isArray(out.deps) && out.deps.every((d) => Array.isArray(d) && typeof d[0] === 'string' && typeof d[1] === 'number'))) return false;
  return true;
}

/**
 * The summaries section: per file, u32 path length, u32 summary length, the path (UTF-8) and the
 * summary's bytes (`encodeSummary`: the v8 serialisation of its pack). One blob per file lets a rescan that changed a few files copy the others' bytes
 * instead of serialising every summary again (4.3 s of a rescan on the 2M-line tree).
 */
function* summaryChunks(summaries: Map<string, Uint8Array>): Generator<Uint8Array> {
  for (const [rel, blob] of summaries) {
    const name = Buffer.from(rel, 'utf8');
    const head = Buffer.alloc(8);
    head.writeUInt32LE(name.length, 0);
    head.writeUInt32LE(blob.length, 4);
    yield head;
    yield name;
    yield blob;
  }
}

/** Writes sections one after another from a position, in vectored writes of about 1 MB, hashing each section. */
class SectionWriter {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  constructor(
    private readonly fd: number,
    private position: number,
  ) {}

  section(chunks: Iterable<Uint8Array>): { length: number; digest: number } {
    let crc = 0;
    let length = 0;
    for (const c of chunks) {
      crc = crc32(c, crc);
      length += c.length;
      this.pending.push(c);
      this.pendingBytes += c.length;
      if (this.pendingBytes >= 1 << 20) this.flush();
    }
    this.flush();
    return { length, digest: crc };
  }

  private flush(): void {
    if (!this.pendingBytes) return;
    let parts = this.pending;
    let left = this.pendingBytes;
    // writev takes the chunks as they are: no copy into one buffer. A short write goes on from where it stopped.
    while (left > 0) {
      let n = fs.writevSync(this.fd, parts, this.position);
      this.position += n;
      left -= n;
      let i = 0;
      while (i < parts.length && n >= parts[i]!.length) n -= parts[i++]!.length;
      parts = parts.slice(i);
      if (n > 0) parts[0] = parts[0]!.subarray(n);
    }
    this.pending = [];
    this.pendingBytes = 0;
  }
}

function decodeSummaries(buf: Buffer): Map<string, Buffer> | null {
  const out = new Map<string, Buffer>();
  let at = 0;
  while (at < buf.length) {
    if (at + 8 > buf.length) return null;
    const nameLen = buf.readUInt32LE(at);
    const blobLen = buf.readUInt32LE(at + 4);
    at += 8;
    if (at + nameLen + blobLen > buf.length) return null;
    const rel = buf.toString('utf8', at, at + nameLen);
    at += nameLen;
    out.set(rel, buf.subarray(at, at + blobLen));
    at += blobLen;
  }
  return out;
}

/** A repo result read from a pack has the shape the scan reads. */
function validRepoResult(r: RepoResult | null | undefined): r is RepoResult {
  return !!r && Array.isArray(r.findings) && Array.isArray(r.internalErrors) && Array.isArray(r.contexts);
}

/** A cached summary's bytes as a summary, or null when they are not one. */
function summaryOf(raw: Uint8Array): FileSummary | null {
  try {
    return decodeSummary(raw);
  } catch {
    return null;
  }
}

/**
 * A recorded facts result from its bytes, if it has the shape of one for `rel` (the facts
 * themselves are discovery's own output); undefined when it has not.
 */
function factsOf(rel: string, blob: Uint8Array): PythonFactsResult | undefined {
  let r: unknown;
  try {
    r = v8.deserialize(blob);
  } catch {
    return undefined;
  }
  if (!r || typeof r !== 'object') return undefined;
  const res = r as Record<string, unknown>;
  const ok = res.file === rel && typeof res.migration === 'boolean' && res.problem === undefined
    && (res.flask === undefined || res.flask === true)
    && ((!!res.facts && typeof res.facts === 'object') || (res.facts === undefined && (Array.isArray(res.releases) || res.flask === true)));
  return ok ? (r as PythonFactsResult) : undefined;
}

const FACTS_KINDS: ReadonlySet<unknown> = new Set<FactsKind>(['self', 'external', 'problem']);

/**
 * The facts section: a u32 length, a v8 header `{ tool, entries: [rel, mtimeMs, size, ino,
 * migration, kind, deps, blob length][] }`, then each entry's result bytes in entry order. One blob
 * per file: a rescan reads only the few it needs, and copies the others' bytes.
 */
function* factsChunks(tool: string, records: Map<string, FactsRecord>): Generator<Uint8Array> {
  const entries: unknown[] = [];
  for (const [rel, r] of records) entries.push([rel, ...r.stat, r.migration, r.kind, r.deps, r.blob?.length ?? 0]);
  const header = v8.serialize({ tool, entries });
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  yield length;
  yield header;
  for (const r of records.values()) if (r.blob) yield r.blob;
}

function readFacts(buf: Buffer | null): { tool: string; entries: Map<string, FactsRecord> } | null {
  try {
    if (!buf || buf.length < 4) return null;
    const headerLength = buf.readUInt32LE(0);
    if (4 + headerLength > buf.length) return null;
    const f = v8.deserialize(buf.subarray(4, 4 + headerLength)) as { tool?: unknown; entries?: unknown };
    if (!f || typeof f.tool !== 'string' || !Array.isArray(f.entries)) return null;
    const entries = new Map<string, FactsRecord>();
    let at = 4 + headerLength;
    for (const e of f.entries as unknown[]) {
      if (!Array.isArray(e) || e.length !== 8) return null;
      const [rel, mtime, size, ino, migration, kind, deps, blobLength] = e as unknown[];
      if (typeof rel !== 'string' || typeof mtime !== 'number' || typeof size !== 'number' || typeof ino !== 'number') return null;
      if (typeof migration !== 'boolean' || !FACTS_KINDS.has(kind) || typeof blobLength !== 'number') return null;
      if (deps !== null && !(Array.isArray(deps) && deps.every((d) => typeof d === 'string'))) return null;
      if (at + blobLength > buf.length) return null;
      const blob = blobLength ? buf.subarray(at, at + blobLength) : null;
      at += blobLength;
      entries.set(rel, { stat: [mtime, size, ino], migration, kind: kind as FactsKind, deps: deps as string[] | null, blob });
    }
    return at === buf.length ? { tool: f.tool, entries } : null;
  } catch {
    return null;
  }
}

let toolHashMemo: string | null = null;

/**
 * The tool version plus a hash of the compiled code (every `.js` under `dist/src`) and the
 * grammar/binding versions, so a rebuilt analyzer never trusts outcomes of the previous build,
 * even at the same version.
 */
export function toolFingerprint(): string {
  if (toolHashMemo) return toolHashMemo;
  const h = crypto.createHash('sha256').update(TOOL_VERSION);
  const srcDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const visit = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.name.endsWith('.js') || e.name.endsWith('.wasm') || e.name.endsWith('.json')) {
        try {
          h.update(e.name).update(fs.readFileSync(p));
        } catch {
          // unreadable: leave it out
        }
      }
    }
  };
  visit(srcDir);
  // The grammar and the bindings shape the trees: their versions are part of the tool.
  const require = createRequire(import.meta.url);
  for (const pkg of ['tree-sitter-python', 'tree-sitter', 'web-tree-sitter']) {
    try {
      h.update(`${pkg}@${(require(`${pkg}/package.json`) as { version?: string }).version ?? '?'}`);
    } catch {
      h.update(`${pkg}@absent`);
    }
  }
  return (toolHashMemo = h.digest('hex'));
}

/**
 * Does a file's analysis give a summary? Not a skipped file, and not test code, which is counted
 * and never parsed (analyzeFile): without this, every test file of a tree was taken for a lost
 * summary and read again after any edit.
 */
function hasSummary(o: FileOutcome): boolean {
  return !o.skipped && !isTestPath(o.path);
}
