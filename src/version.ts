import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The package version, read from package.json (dist/src/version.js → ../../package.json). */
export const TOOL_VERSION: string = (() => {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = require(rel) as { name?: string; version?: string };
      if (pkg.name === 'persist-audit' && pkg.version) return pkg.version;
    } catch {
      // try the next layout
    }
  }
  return '0.0.0';
})();
