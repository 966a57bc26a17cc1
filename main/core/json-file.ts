/** A JsonFile backed by a real file, written atomically (temp file, fsync, rename). */
import fs from 'node:fs';
import path from 'node:path';
import type { JsonFile } from './ports.ts';

export function jsonFile<T>(file: string, mode = 0o600): JsonFile<T> {
  return {
    read(): T | null {
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw new Error(`cannot read ${file}: ${(err as Error).message}`);
      }
    },
    write(value: T): void {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      const fd = fs.openSync(tmp, 'w', mode);
      try {
        fs.writeSync(fd, JSON.stringify(value, null, 2) + '\n');
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, file);
    },
  };
}

/** An in-memory JsonFile (tests). */
export function memoryJson<T>(initial: T | null = null): JsonFile<T> & { value: T | null } {
  const box = {
    value: initial,
    read: () => (box.value === null ? null : (structuredClone(box.value) as T)),
    write: (v: T) => void (box.value = structuredClone(v)),
  };
  return box;
}
