/** How every output shows a finding's call chain: the names in one line, the places hop by hop. */
import type { ChainStep, Finding } from '../types.js';

/** `a → b → requests.get`: each function, then what the last one calls. */
export function chainNames(f: Finding): string | null {
  const chain = f.chain;
  if (!chain || chain.length < 2) return null;
  return [...chain.map((s) => s.function), chain[chain.length - 1]!.call].join(' → ');
}

/** One line per hop: `app/svc.py:12:9 in Service.fetch: self.client.latest`. */
export function chainHops(f: Finding): string[] {
  const chain = f.chain;
  if (!chain || chain.length < 2) return [];
  return chain.map(stepLine);
}

/** One hop or call site: `app/svc.py:12:9 in Service.fetch: self.client.latest`. */
function stepLine(s: ChainStep): string {
  return `${s.path}:${s.line}:${s.column} in ${s.function}: ${s.call}`;
}

/** One line per call site a finding stands for (`Finding.callers`): `app/api.py:30:5 in list_rows: build_page`. */
export function callerLines(f: Finding): string[] {
  return (f.callers ?? []).map(stepLine);
}
