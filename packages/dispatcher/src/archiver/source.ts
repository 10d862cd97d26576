/**
 * Where the archiver reads the binlog: the master's binlog FILES, read directly from its binlog
 * directory (the archiver runs on the master), and the server's SQL interface only to list them
 * (SHOW BINARY LOGS: BINLOG MONITOR) and to read its identity (@@server_id, @@log_bin_basename:
 * no privilege). Nothing here locks or flushes anything; the files are opened read-only.
 */
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Pool } from 'mysql2/promise';

export interface BinlogFile {
  readonly name: string;
  readonly size: number;
}

export interface SourceIdentity {
  readonly serverId: number;
  /** MariaDB has no server_uuid: null there. */
  readonly serverUuid: string | null;
}

/** What the archiver needs of the master: narrow, so a test can drive it with files alone. */
export interface BinlogSource {
  /** The binlog files the server has, oldest first (SHOW BINARY LOGS). The last one is the active log. */
  listLogs(): Promise<BinlogFile[]>;
  identity(): Promise<SourceIdentity>;
  /** Up to `max` bytes of `file` from `offset` (fewer at its end); undefined when the file is gone. */
  read(file: string, offset: number, max: number): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

/** The master's binlog files, listed over SQL and read from `binlogDir` (default: the directory of @@log_bin_basename). */
export class MariadbBinlogSource implements BinlogSource {
  private dir: string | undefined;

  constructor(
    private readonly pool: Pool,
    binlogDir?: string,
  ) {
    this.dir = binlogDir;
  }

  async listLogs(): Promise<BinlogFile[]> {
    const [rows] = await this.pool.query('SHOW BINARY LOGS');
    return (rows as Array<Record<string, unknown>>).map((r) => ({ name: String(r.Log_name), size: Number(r.File_size) }));
  }

  async identity(): Promise<SourceIdentity> {
    const [rows] = await this.pool.query('SELECT @@server_id AS serverId, @@log_bin_basename AS base, @@log_bin AS logBin');
    const r = (rows as Array<{ serverId: number; base: string | null; logBin: number }>)[0]!;
    if (!r.logBin || !r.base) throw new Error('the server does not write a binary log (log_bin is off): there is nothing to archive');
    this.dir ??= dirname(r.base);
    return { serverId: Number(r.serverId), serverUuid: null };
  }

  async read(file: string, offset: number, max: number): Promise<Buffer | undefined> {
    if (this.dir === undefined) await this.identity();
    if (basename(file) !== file) throw new Error(`not a binlog file name: ${file}`);
    let fh;
    try {
      fh = await open(join(this.dir!, file), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const want = Math.max(0, Math.min(max, (await fh.stat()).size - offset));
      const buf = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
