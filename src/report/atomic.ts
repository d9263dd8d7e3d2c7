/** Writing a file so that readers see the old content or the new one, never half of either. */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Writes `data` to `filePath` atomically: creates missing directories, writes a temp file in the
 * same directory (same filesystem, so `rename` is atomic), fsyncs it, renames it over the target.
 * The target's permissions are kept when it exists. The temp file is removed on any error.
 */
export function writeFileAtomic(filePath: string, data: string | Uint8Array | Iterable<string>): void {
  const dir = path.dirname(filePath);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | null = null;
  try {
    const mode = existingMode(filePath);
    fd = fs.openSync(tmp, 'wx', mode ?? 0o666);
    if (mode !== null) fs.fchmodSync(fd, mode);
    if (typeof data === 'string' || data instanceof Uint8Array) fs.writeFileSync(fd, data);
    // Pieces (a large report's lines): written a batch at a time, never joined whole.
    else for (const chunk of batches(data)) fs.writeFileSync(fd, chunk);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, filePath);
  } catch (err) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  syncDirectory(dir);
}

function existingMode(filePath: string): number | null {
  try {
    return fs.statSync(filePath).mode & 0o7777;
  } catch {
    return null;
  }
}

/** Makes the rename itself durable where the platform allows it (not on Windows). */
function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/** Joins pieces into strings of about a megabyte. */
function* batches(pieces: Iterable<string>): Generator<string> {
  let batch: string[] = [];
  let size = 0;
  for (const p of pieces) {
    batch.push(p);
    size += p.length;
    if (size >= 1 << 20) {
      yield batch.join('');
      batch = [];
      size = 0;
    }
  }
  if (batch.length) yield batch.join('');
}
