/**
 * The local launcher's configuration (a target's `launcher` with type 'local'), beside the EC2 one
 * (ec2-config.ts): the launcher imports it from here, not from the dispatcher's configuration above
 * it. Every field says what it is with `.describe()`: docs/configuration.md is generated from these
 * descriptions.
 */
import { z } from 'zod';

const AbsPath = z.string().min(1).max(4096).refine((p) => p.startsWith('/'), 'must be an absolute path');

export const LocalLauncherConfigSchema = z
  .strictObject({
    type: z.literal('local').describe("Run the agent as a process on the dispatcher's machine."),
    workDir: AbsPath.optional().describe("Where each instance's directories go (data directory, run directory, user-data, agent log). Default: `<stateDir>/local`."),
    agentCommand: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe("The agent's command line, program first. Default: this Node.js and the agent package's dist/main.js."),
    mysqldBinary: AbsPath.default('/usr/sbin/mariadbd').describe("The server binary the agent starts (it replaces the run document's `mysqld.binary`)."),
    priority: z
      .strictObject({
        nice: z.number().int().min(0).max(19).default(10).describe('CPU niceness of the agent and everything it starts (its mariadbd, the seed\'s dump and client): 0 to 19. Default 10: the master\'s own server, at 0, is served first.'),
        io: z
          .enum(['normal', 'low', 'idle'])
          .default('low')
          .describe('I/O priority (ionice): `normal` as any process, `low` best-effort level 7 (default), `idle` only when no one else uses the disk (can stall the agent for long on a busy master).'),
        cpu: z
          .enum(['normal', 'idle'])
          .default('normal')
          .describe(
            "CPU scheduling policy: `normal` (default) is the niceness above; `idle` is SCHED_IDLE (chrt --idle): the agent runs only on CPU time no one else wants, and a master thread that wakes takes the core at once. It halved the master's p99 during the first (seeding) cycle in bench:cycle, not during the daily one, but a master that keeps every core busy starves the agent until the run's deadline.",
          ),
      })
      .default({ nice: 10, io: 'low', cpu: 'normal' })
      .describe("The agent runs on the master's machine with the local launcher: it yields the CPU and the disk to the master by default (on EC2 it has a host of its own)."),
    keepInstances: z.boolean().default(false).describe("Keep an instance's directories after its run, for inspection. Default: removed (the agent log stays)."),
    env: z
      .record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/), z.string())
      .default({})
      .describe("Extra environment variables for the agent (AWS_* credentials for an S3 server outside AWS, say); the rest is the dispatcher's own environment."),
  })
  .describe("The agent runs as a process on the dispatcher's machine, with its own local server, its data directory under `workDir`, and an IMDS endpoint of its own serving the run document: for the demo and the tests. It sets the run document's `mysqld.datadir`, `runDir`, `binary` and `user` itself.");
export type LocalLauncherConfig = z.infer<typeof LocalLauncherConfigSchema>;
