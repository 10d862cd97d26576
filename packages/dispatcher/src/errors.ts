/**
 * The dispatcher's error registry: every error the service or its launchers throw on purpose is a
 * DispatcherError with a code from DISPATCHER_ERRORS. The HTTP layer answers with `status` and the
 * message; the CLI exits with `exitCode`. How a failed run ended, when no error of the agent says it,
 * is a run outcome (RUN_OUTCOMES): a code on the run's record, never an HTTP answer. A test checks
 * that the README documents every code, and one that every code used in the sources is registered.
 */
import { defineErrors, type ErrorEntry, type RegisteredError } from '@understudy/core/basics';

export interface DispatcherErrorSpec extends ErrorEntry {
  /** HTTP status when the error ends a request. */
  readonly status: number;
}

export const DISPATCHER_ERRORS = {
  DS_CONFIG_INVALID: { description: 'The dispatcher configuration is invalid (the message names the field).', status: 500, exitCode: 2 },
  DS_BAD_REQUEST: { description: 'A request body or parameter is malformed (the message names the field).', status: 400, exitCode: 2 },
  DS_UNAUTHORIZED: { description: "A request without its token, or with a wrong one: a progress report without this run's token, a run started without the admin token, runs or metrics read without the read token (or the admin token).", status: 401, exitCode: 2 },
  DS_HOST_NOT_ALLOWED: { description: 'A request whose Host header names neither a loopback name, the listen address, nor one of `listen.allowedHosts` (a web page reaching the service through DNS rebinding).', status: 421, exitCode: 2 },
  DS_NOT_FOUND: { description: 'A request for a route the service does not have (a CLI and a service of different versions, or a mistyped URL).', status: 404, exitCode: 1 },
  DS_RUN_NOT_FOUND: { description: 'No run with that id.', status: 404, exitCode: 4 },
  DS_TARGET_UNKNOWN: { description: 'No target of that name in the configuration.', status: 404, exitCode: 2 },
  DS_RUN_ACTIVE: { description: 'The target already has as many active runs as it allows (one by default).', status: 409, exitCode: 5 },
  DS_RUN_FINISHED: { description: 'The run has ended; it takes no more reports.', status: 409, exitCode: 5 },
  DS_LAUNCH_FAILED: { description: 'The launcher could not start an instance for the run (the message says why).', status: 502, exitCode: 7 },
  DS_TERMINATE_FAILED: { description: "The launcher could not terminate a run's instance (it is retried by the watchdog).", status: 502, exitCode: 7 },
  DS_STATE_STORE: { description: "The dispatcher's state database could not be opened or written.", status: 500, exitCode: 9 },
  DS_SERVICE_UNAVAILABLE: { description: 'The CLI could not reach the dispatcher service.', status: 503, exitCode: 7 },
  DS_INSTANCE_CONNECT_UNCHECKED: {
    description:
      "The target's agent logs in with EC2 Instance Connect, whose keys carry no restrictions, and init-master has not recorded that the master's sshd restricts the SSH user to the target's destinations (`sshdRestriction`, missing or stale): no run is started. Add the Match User block init-master prints and run init-master again.",
    status: 409,
    exitCode: 2,
  },
  DS_ARCHIVE_GAP: {
    description: "The target's binlog archive has a gap (the master purged a log before the archiver shipped it, or was rebuilt): no restore to a point inside it is possible. `understudy status` ends with it; the archiver's log and status file name the missing files.",
    status: 409,
    exitCode: 10,
  },
  DS_INTERNAL: { description: 'An unexpected internal error.', status: 500, exitCode: 1 },
} as const satisfies Record<string, DispatcherErrorSpec>;

/**
 * How a failed run ended when the agent's own error does not say it: the watchdog's verdicts, a
 * launch the dispatcher's restart cut short, and what the CLI reports when it waited for a run that
 * failed. Each is the run's `errorCode` in the database and on the wire, and the exit code of a
 * command that waited for the run. Not errors of a request: no HTTP status.
 */
export const RUN_OUTCOMES = {
  DS_RUN_SILENT: { description: 'A run reported nothing for longer than its heartbeat timeout; the watchdog ended it and terminated its instance.', exitCode: 3 },
  DS_RUN_DEADLINE: { description: 'A run passed its deadline; the watchdog ended it and terminated its instance.', exitCode: 3 },
  DS_INSTANCE_GONE: { description: "A run's instance stopped or vanished before the agent reported an outcome.", exitCode: 3 },
  DS_LAUNCH_INTERRUPTED: { description: 'The dispatcher stopped while it was launching the run; the instance, if any, is swept at start-up.', exitCode: 3 },
  DS_RUN_FAILED: { description: 'The run ended in failure (the run and its events say where).', exitCode: 3 },
  AG_UNKNOWN: { description: 'The agent reported that the run failed without naming an error code (the dispatcher records this one).', exitCode: 3 },
} as const satisfies Record<string, ErrorEntry>;

export type RunOutcomeCode = keyof typeof RUN_OUTCOMES;

/** The run outcomes of the dispatcher's own (DS_): a DispatcherError carries them when the CLI ends with one. */
type DispatcherOutcomeCode = Extract<RunOutcomeCode, `DS_${string}`>;

/** Every code a DispatcherError carries: the errors', and the dispatcher's run outcomes. */
export type DispatcherErrorCode = keyof typeof DISPATCHER_ERRORS | DispatcherOutcomeCode;

/** A run outcome thrown as a DispatcherError (a CLI command that waited for the run ends with it) is not an HTTP answer: status 200. */
const OUTCOMES_AS_ERRORS = Object.fromEntries(
  Object.entries(RUN_OUTCOMES)
    .filter(([code]) => code.startsWith('DS_'))
    .map(([code, outcome]) => [code, { ...outcome, status: 200 }]),
) as Record<DispatcherOutcomeCode, DispatcherErrorSpec>;

const registry = defineErrors<'DS', DispatcherErrorCode, DispatcherErrorSpec>('DS', { ...DISPATCHER_ERRORS, ...OUTCOMES_AS_ERRORS }, 'DispatcherError');

export const DispatcherError = registry.Error;
export type DispatcherError = RegisteredError<DispatcherErrorCode, DispatcherErrorSpec>;

export const isDispatcherError: (err: unknown, code?: DispatcherErrorCode) => err is DispatcherError = registry.is;

/** Whether `code` is a run outcome (a code a failed run's record may carry besides the agent's). */
export function isRunOutcome(code: string): code is RunOutcomeCode {
  return Object.hasOwn(RUN_OUTCOMES, code);
}
