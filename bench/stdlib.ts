/** The default corpus of the benches: the Python standard library of the machine's `python3`. */
import { execFileSync } from 'node:child_process';

export function stdlibRoot(): string {
  return execFileSync('python3', ['-c', 'import sysconfig;print(sysconfig.get_paths()["stdlib"])']).toString().trim();
}
