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
  /** On success of 'commit': the backup committed, and the one restored from. */
  backupId: z.string().max(64).optional(),
  restoredFrom: z.string().max(64).nullable().optional(),
});
export type RunEvent = z.infer<typeof RunEventSchema>;
export type RunEventInput = Omit<RunEvent, 'seq' | 'at'>;
