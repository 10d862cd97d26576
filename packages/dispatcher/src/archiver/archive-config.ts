/**
 * A target's `archive` section: the binlog archiver (`understudy archive-binlogs`, on the master)
 * that ships the master's binary log to the target's repository continuously (issue 20).
 */
import { z } from 'zod';

const AbsPath = z.string().min(1).max(4096).refine((p) => p.startsWith('/'), 'must be an absolute path');

export const DEFAULT_MAX_DELAY_SECONDS = 60;
export const DEFAULT_SPOOL_MAX_BYTES = 1024 ** 3;

export const ArchiveConfigSchema = z.strictObject({
  enabled: z.boolean().default(false).describe('Run the archiver for this target (`understudy archive-binlogs --target NAME`, systemd: `understudy-binlogs.service`). Off: the command refuses to start for it.'),
  maxDelaySeconds: z
    .number()
    .int()
    .min(2)
    .max(3600)
    .default(DEFAULT_MAX_DELAY_SECONDS)
    .describe("RPO: every committed transaction is in the repository within this many seconds of its commit. The active binlog is cut into segments at transaction boundaries (a quarter of this after the oldest transaction not yet shipped), without waiting for a rotation. Default 60."),
  binlogDir: AbsPath.optional().describe("The master's binlog directory, read directly (the archiver's user needs read access to it: e.g. the `mysql` group). Default: the directory of the server's `@@log_bin_basename`."),
  spoolDir: AbsPath.default('/var/lib/understudy/binlog-spool').describe('Where segments wait while S3 cannot be reached (and between being read and being stored). Bounded by `spoolMaxBytes`.'),
  spoolMaxBytes: z
    .number()
    .int()
    .min(1024 * 1024)
    .max(2 ** 50)
    .default(DEFAULT_SPOOL_MAX_BYTES)
    .describe('The most bytes the spool holds. When it is full the archiver stops reading the binlog (nothing is dropped: the master still has it) and reports `spoolFull` (status, metric `understudy_archive_spool_full`); if the master purges a log meanwhile, that is a recorded gap. Default 1 GiB.'),
  segmentMaxBytes: z
    .number()
    .int()
    .min(64 * 1024)
    .max(1024 ** 3)
    .default(16 * 1024 * 1024)
    .describe('A segment is cut once it holds this many bytes (at the next transaction boundary), whatever its age. It sets the memory of the archiver while it catches up (measured peak RSS: 314 MiB at 16 MiB, 194 MiB at 4 MiB) and of a restore to a point (3 segments held). Default 16 MiB.'),
  mysql: z
    .strictObject({
      socket: AbsPath.optional().describe("The server's unix socket. Default: TCP to the target's `master.mysql` host and port."),
      user: z.string().min(1).max(80).optional().describe("The account the archiver lists binlogs with (SHOW BINARY LOGS: BINLOG MONITOR, which `init-master` grants the replication account). Default: the target's `replication.user`."),
      passwordFile: AbsPath.optional().describe("A file holding that account's password (without one trailing newline), readable by the archiver's user. Default: no password (unix_socket authentication)."),
    })
    .default({})
    .describe('How the archiver reaches the master\'s SQL interface: only to list the binlogs and read its identity (server_id, the binlog directory); it never locks or flushes anything.'),
}).superRefine((a, ctx) => {
  if (a.spoolMaxBytes < 2 * a.segmentMaxBytes) ctx.addIssue({ code: 'custom', path: ['spoolMaxBytes'], message: 'must hold at least two segments (2 x segmentMaxBytes)' });
});
export type ArchiveConfig = z.infer<typeof ArchiveConfigSchema>;
