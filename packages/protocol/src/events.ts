/**
 * What an agent reports to the dispatcher: one event per phase change and periodic progress. The
 * schema is shared: the agent builds events with it, the dispatcher validates request bodies with it.
 */
import { z } from 'zod';

/** The route an agent posts its reports to (fastify's syntax: `:id` is the run id). */
export const EVENTS_ROUTE = '/runs/:id/events';

/** EVENTS_ROUTE for one run: the path an agent posts to. */
export function eventsPath(runId: string): string {
  return EVENTS_ROUTE.replace(':id', encodeURIComponent(runId));
}

/** 'archive': the binlog archive replayed onto the restored backup, before the catch-up from the master (issue 20). */
export const PHASES = ['start', 'tunnel', 'restore', 'archive', 'seed', 'catch-up', 'snapshot', 'upload', 'commit', 'done', 'failed'] as const;
export type Phase = (typeof PHASES)[number];

const GtidStateText = z.string().max(4000);
const Time = z.iso.datetime().nullable();

/** The archive phase's record (RunEvent.archive). Times are the transactions' commit times (UTC). */
export const ArchiveReplaySchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('replayed'),
    /** The backup's position, and the position the replay reached (checked against the server). */
    from: GtidStateText,
    to: GtidStateText,
    firstGtid: z.string().max(64).nullable(),
    lastGtid: z.string().max(64).nullable(),
    firstTime: Time,
    lastTime: Time,
    transactions: z.number().int().min(0),
    segments: z.number().int().min(0),
    bytes: z.number().int().min(0),
    /** The archive breaks after what was replayed (a recorded gap or a chain problem): the master served the rest. */
    gapAfter: z.string().max(4000).optional(),
  }),
  /** The backup's position lies in a gap of the archive (or before it): nothing replayed, the master served all. */
  z.strictObject({ kind: z.literal('gap'), from: GtidStateText.nullable(), gap: z.string().max(4000) }),
  /** Nothing to replay: no archive, the backup at its end, no recorded position, not MariaDB. */
  z.strictObject({ kind: z.literal('skipped'), why: z.string().max(4000) }),
]);
export type ArchiveReplay = z.infer<typeof ArchiveReplaySchema>;

export const RunEventSchema = z.strictObject({
  /** Increasing per run: the dispatcher ignores replays and out-of-order duplicates. */
  seq: z.number().int().min(0),
  at: z.iso.datetime(),
  phase: z.enum(PHASES),
  status: z.enum(['started', 'progress', 'succeeded', 'failed']),
  message: z.string().max(4000).optional(),
  instanceId: z.string().max(64).optional(),
  metrics: z
    .strictObject({
      bytesDone: z.number().min(0).optional(),
      bytesTotal: z.number().min(0).optional(),
      bytesPerSecond: z.number().min(0).optional(),
      uploadedBytes: z.number().min(0).optional(),
      reusedBytes: z.number().min(0).optional(),
      lagSeconds: z.number().min(0).nullable().optional(),
      goalPosition: z.string().max(4000).optional(),
      executedPosition: z.string().max(4000).optional(),
      transactionsBehind: z.number().min(0).optional(),
      /** The master the goal was read from (the dispatcher shows when it changes between runs). */
      sourceServerId: z.number().int().min(0).max(4294967295).optional(),
      sourceServerUuid: z.string().max(64).optional(),
      sourceHostname: z.string().max(255).optional(),
    })
    .optional(),
  /**
   * On failure: the error code and message (never a secret, never a stack trace). The code should be
   * one of WIRE_ERROR_CODES (error-codes.ts); any other is accepted and recorded as AG_UNKNOWN.
   */
  error: z.strictObject({ code: z.string().max(64), message: z.string().max(4000) }).optional(),
  /**
   * On success of 'archive': what the cycle replayed from the binlog archive onto the restored
   * backup (every cycle proves the archive restores), or the gap it met, or why it replayed none.
   * Optional: an agent from before it says so in `message` only.
   */
  archive: ArchiveReplaySchema.optional(),
  /** On success of 'commit': the backup committed, and the one restored from. */
  backupId: z.string().max(64).optional(),
  restoredFrom: z.string().max(64).nullable().optional(),
});
export type RunEvent = z.infer<typeof RunEventSchema>;
export type RunEventInput = Omit<RunEvent, 'seq' | 'at'>;
