/**
 * The dataset cache directory: one file per key (named by a hash of the key), at most `limit`
 * of them, the least recently used leaving first. Writes land under a temporary name and are
 * renamed into place, so a file that has its final name is complete.
 */
import fs from 'node:fs';
import path from 'node:path';
import { log } from '../core/log';
import { messageOf } from '../core/errors';
import { datasetFileName } from './dataset-file';

const PREFIX = 'randomx-';
const SUFFIX = '.dataset';
const TEMP_MARK = '.partial-';

export class DatasetStore {
  private tidied = false;

  constructor(
    readonly dir: string,
    readonly limit: number,
  ) {}

  /**
   * Before the first use: clear what an interrupted write left behind, and what a lower limit
   * no longer keeps. Nothing is created until a dataset is written.
   */
  private tidy(): void {
    if (this.tidied) return;
    this.tidied = true;
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return; // no directory yet
    }
    for (const name of names) {
      if (name.startsWith(PREFIX) && name.includes(TEMP_MARK)) this.remove(name);
    }
    this.evict(this.limit);
  }

  /** Make sure the directory exists before a write. */
  prepareWrite(): void {
    this.tidy();
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  pathFor(key: Buffer): string {
    return path.join(this.dir, datasetFileName(key));
  }

  /** A temporary name beside the final one, unique to this write. */
  tempPathFor(key: Buffer): string {
    return `${this.pathFor(key)}${TEMP_MARK}${process.pid}-${Date.now()}`;
  }

  /** The key's file if there is one, marked as just used. */
  find(key: Buffer): string | undefined {
    this.tidy();
    const file = this.pathFor(key);
    try {
      const now = new Date();
      fs.utimesSync(file, now, now);
      return file;
    } catch {
      return undefined;
    }
  }

  /** A file that cannot be used: say why and delete it, so it is built and written anew. */
  discard(file: string, reason: string): void {
    log.warning(`dataset cache: ${file}: ${reason}; deleting it and building the dataset instead`);
    try {
      // Whatever stands under the name (a directory too): the built dataset will go there.
      fs.rmSync(file, { force: true, recursive: true });
    } catch (e) {
      log.warning(`dataset cache: cannot delete ${file}: ${messageOf(e)}`);
    }
  }

  /** Keep at most `keep` dataset files (besides `except`), the least recently used out first. */
  evict(keep: number, except?: string): void {
    let files: Array<{ name: string; used: number }>;
    try {
      files = fs
        .readdirSync(this.dir)
        .filter((n) => n.startsWith(PREFIX) && n.endsWith(SUFFIX))
        .filter((n) => path.join(this.dir, n) !== except)
        .map((name) => ({ name, used: fs.statSync(path.join(this.dir, name)).mtimeMs }))
        .sort((a, b) => b.used - a.used);
    } catch (e) {
      log.warning(`dataset cache: cannot list ${this.dir}: ${messageOf(e)}`);
      return;
    }
    for (const { name } of files.slice(Math.max(0, keep))) {
      log.info(`dataset cache: removing ${name}, the least recently used beyond ${this.limit}`);
      this.remove(name);
    }
  }

  private remove(name: string): void {
    try {
      fs.rmSync(path.join(this.dir, name), { force: true });
    } catch (e) {
      log.warning(`dataset cache: cannot remove ${name}: ${messageOf(e)}`);
    }
  }
}
