import fs from 'node:fs';
import path from 'node:path';

/** The package version, read once from package.json next to the compiled tree. */
function readVersion(): string {
  for (const candidate of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, candidate), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'vigil' && pkg.version) return pkg.version;
    } catch {
      // try the next layout
    }
  }
  return 'unknown';
}

export const VERSION = readVersion();
