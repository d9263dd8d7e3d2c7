/**
 * V8 tuning for the command line's scan, set once per process before the pool starts: V8's
 * flags are process-wide, so the workers' isolates compile under them too. The library's
 * `scan()` does not set it: a host process keeps its own flags.
 *
 * TurboFan's inlining budget. Under V8's default (up to 920 bytes of inlined bytecode per
 * optimised function), the analysis code — the semantic model, the rules, the summaries — costs
 * seconds of CPU on V8's compiler threads, paid again by every worker, and on two cores that
 * compile competes with the workers themselves. With a zero budget TurboFan still inlines the
 * small functions (V8's `--max-inlined-bytecode-size-small`, the accessors of the node layer) and
 * nothing larger. Measured with `npm run bench` against `--no-jit-tuning`: the helper threads'
 * CPU of a full audit falls by a third or more (stdlib 5.7–6.4 → 3.5–3.8 s, a generated 2 M-line
 * tree 17.5–19.0 → 13.4–14.2 s), and the single-threaded analysis is no slower for it. Through
 * the command line the stdlib scan went from 14.6–15.1 to 12.6–13.4 s; on the 2M-line tree no
 * wall-time difference showed through the machine's noise (the compile is a smaller share there).
 */
import v8 from 'node:v8';

const FLAG = '--max-inlined-bytecode-size-cumulative=0';

let tuned = false;

/**
 * Sets the flag once. Only on the V8 versions known to have it (an unknown flag would print an
 * error on stderr): Node 12's V8 7 through Node 24's V8 13.
 */
export function tuneJit(v8Version = process.versions.v8): boolean {
  if (tuned) return true;
  const major = Number(v8Version.split('.')[0]);
  if (!(major >= 7 && major <= 13)) return false;
  v8.setFlagsFromString(FLAG);
  tuned = true;
  return true;
}
