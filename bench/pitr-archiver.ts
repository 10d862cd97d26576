/**
 * The binlog archiver as the operator runs it: `understudy --config FILE archive-binlogs --target
 * db1`, a child process of the real CLI, with a dispatcher configuration of its own (the target's
 * `archive` section, its repository on the gateway). It is started once per configured
 * maxDelaySeconds; each start resumes from the archive's head (that is the archiver's design, and
 * it is exercised here too). What the benchmark reads of it: its status file (the head's last
 * GTID, written after every round) and its /proc figures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseGtid } from '@understudy/core';
import { CLI } from './cycle-rigs.js';
import { processUsage } from './cycle-proc.js';

export interface ArchiverSetup {
  readonly dir: string;
  /** The master's SQL address (the archiver lists its binlogs there and reads its files from @@log_bin_basename's directory). */
  readonly master: { readonly host: string; readonly port: number };
  readonly account: { readonly user: string; readonly password: string };
  readonly repositoryUrl: string;
  /** What the CLI needs in its environment (the S3 credentials). */
  readonly env: NodeJS.ProcessEnv;
}

/** The fields of the archiver's status file (packages/dispatcher/src/archiver/status-file.ts) read here. */
interface StatusRead {
  readonly updatedAt: string;
  readonly head: { readonly kind: 'segment' | 'gap'; readonly lastGtid: string | null } | null;
  readonly gaps: number;
  readonly storeError: string | null;
  readonly sourceError: string | null;
  readonly segmentsStored: number;
}

export interface RunningArchiver {
  readonly pid: number;
  readonly maxDelaySeconds: number;
  /** The sequence number of the newest archived transaction (the head segment's last GTID), per the status file; NaN before one is stored. */
  archivedSeq(): Promise<number>;
  status(): Promise<StatusRead | undefined>;
  usage(): Promise<{ cpuS: number; rssMiB: number; hwmMiB: number } | undefined>;
  /** Throws when the archiver has exited (it never should before stop()). */
  check(): void;
  /** Waits until the archive holds `seq` (the master's last GTID when asked); returns the seconds waited. */
  waitFor(seq: number, timeoutS: number): Promise<number>;
  /** SIGTERM and wait (SIGKILL after 15 s). */
  stop(): Promise<void>;
}

const STATE = 'state';
const TARGET = 'db1';

/** Writes the configuration for `maxDelaySeconds` and starts `understudy archive-binlogs`. */
export async function startArchiver(s: ArchiverSetup, maxDelaySeconds: number): Promise<RunningArchiver> {
  const stateDir = join(s.dir, STATE);
  await mkdir(stateDir, { recursive: true });
  const passwordFile = join(s.dir, 'archiver.pw');
  await writeFile(passwordFile, `${s.account.password}\n`, { mode: 0o600 });
  const configPath = join(s.dir, `dispatcher-${maxDelaySeconds}s.json`);
  await writeFile(
    configPath,
    JSON.stringify(
      {
        // The service is never started: only the archiver command reads this file.
        listen: { host: '127.0.0.1', port: 9 },
        stateDir,
        targets: {
          [TARGET]: {
            // The archiver needs only the master's SQL address; the ssh block is required by the schema and never used here.
            master: { flavor: 'mariadb', ssh: { host: '127.0.0.1', user: 'understudy', hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, auth: { type: 'privateKeyFile', path: '/nonexistent' } }, mysql: { host: s.master.host, port: s.master.port } },
            replication: { user: s.account.user, password: { source: 'file', path: passwordFile } },
            repository: { url: s.repositoryUrl },
            launcher: { type: 'local', agentCommand: ['/bin/false'] },
            archive: { enabled: true, maxDelaySeconds, spoolDir: join(s.dir, 'spool'), mysql: { passwordFile } },
          },
        },
      },
      null,
      2,
    ),
  );
  const logPath = join(s.dir, `archiver-${maxDelaySeconds}s.log`);
  const out = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [CLI, '--config', configPath, 'archive-binlogs', '--target', TARGET], { cwd: s.dir, env: s.env, stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) => child.once('exit', (code, signal) => ((exited = `exit ${code ?? signal}`), resolve())));
  await new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject));
  const statusPath = join(stateDir, `archive-${TARGET}.json`);
  const status = async (): Promise<StatusRead | undefined> => {
    try {
      return JSON.parse(await readFile(statusPath, 'utf8')) as StatusRead;
    } catch {
      return undefined; // not written yet, or caught between the write and the rename
    }
  };
  const logTail = async (): Promise<string> => (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-12).join('\n');
  const archivedSeq = async (): Promise<number> => {
    const g = (await status())?.head?.lastGtid;
    return g ? parseGtid(g).seq : NaN;
  };
  const check = (): void => {
    if (exited !== undefined) throw new Error(`understudy archive-binlogs (maxDelaySeconds ${maxDelaySeconds}) stopped (${exited}); ${logPath}`);
  };
  return {
    pid: child.pid!,
    maxDelaySeconds,
    archivedSeq,
    status,
    usage: () => processUsage(child.pid!),
    check,
    async waitFor(seq, timeoutS) {
      const t0 = Date.now();
      for (;;) {
        if (exited !== undefined) throw new Error(`understudy archive-binlogs stopped (${exited}) before archiving seq ${seq}:\n${await logTail()}`);
        if ((await archivedSeq()) >= seq) return (Date.now() - t0) / 1000;
        if (Date.now() - t0 > timeoutS * 1000) throw new Error(`the archive did not reach seq ${seq} in ${timeoutS} s (status ${JSON.stringify(await status())}):\n${await logTail()}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async stop() {
      if (exited !== undefined) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exit;
      clearTimeout(t);
    },
  };
}
