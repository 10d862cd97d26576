/**
 * The dispatcher's error registry: every error the service or its launchers throw on purpose is a
 * DispatcherError with a code from this table. The HTTP layer answers with `status` and the message;
 * the CLI exits with `exitCode`. A test checks that the README documents every code.
 */

export interface DispatcherErrorSpec {
  readonly description: string;
  /** HTTP status when the error ends a request. */
  readonly status: number;
  /** Process exit code when it ends a CLI command. */
  readonly exitCode: number;
}

export const DISPATCHER_ERRORS = {
  DS_CONFIG_INVALID: { description: 'The dispatcher configuration is invalid (the message names the field).', status: 500, exitCode: 2 },
  DS_BAD_REQUEST: { description: 'A request body or parameter is malformed (the message names the field).', status: 400, exitCode: 2 },
  DS_UNAUTHORIZED: { description: "A request without its token, or with a wrong one: a progress report without this run's token, a run started without the admin token, runs or metrics read without the read token (or the admin token).", status: 401, exitCode: 2 },
  DS_HOST_NOT_ALLOWED: { description: 'A request whose Host header names neither a loopback name, the listen address, nor one of `listen.allowedHosts` (a web page reaching the service through DNS rebinding).', status: 421, exitCode: 2 },
  DS_RUN_NOT_FOUND: { description: 'No run with that id.', status: 404, exitCode: 4 },
  DS_TARGET_UNKNOWN: { description: 'No target of that name in the configuration.', status: 404, exitCode: 2 },
  DS_RUN_ACTIVE: { description: 'The target already has as many active runs as it allows (one by default).', status: 409, exitCode: 5 },
  DS_RUN_FINISHED: { description: 'The run has ended; it takes no more reports.', status: 409, exitCode: 5 },
  DS_LAUNCH_FAILED: { description: 'The launcher could not start an instance for the run (the message says why).', status: 502, exitCode: 7 },
  DS_TERMINATE_FAILED: { description: "The launcher could not terminate a run's instance (it is retried by the watchdog).", status: 502, exitCode: 7 },
  DS_STATE_STORE: { description: "The dispatcher's state database could not be opened or written.", status: 500, exitCode: 9 },
  DS_SERVICE_UNAVAILABLE: { description: 'The CLI could not reach the dispatcher service.', status: 503, exitCode: 7 },
  DS_RUN_SILENT: { description: 'A run reported nothing for longer than its heartbeat timeout; the watchdog ended it and terminated its instance.', status: 200, exitCode: 3 },
  DS_RUN_DEADLINE: { description: 'A run passed its deadline; the watchdog ended it and terminated its instance.', status: 200, exitCode: 3 },
  DS_INSTANCE_GONE: { description: "A run's instance stopped or vanished before the agent reported an outcome.", status: 200, exitCode: 3 },
  DS_LAUNCH_INTERRUPTED: { description: 'The dispatcher stopped while it was launching the run; the instance, if any, is swept at start-up.', status: 200, exitCode: 3 },
  DS_RUN_FAILED: { description: 'The run ended in failure (the run and its events say where).', status: 200, exitCode: 3 },
  DS_INSTANCE_CONNECT_UNCHECKED: {
    description:
      "The target's agent logs in with EC2 Instance Connect, whose keys carry no restrictions, and init-master has not recorded that the master's sshd restricts the SSH user to the target's destinations (`sshdRestriction`, missing or stale): no run is started. Add the Match User block init-master prints and run init-master again.",
    status: 409,
    exitCode: 2,
  },
  DS_INTERNAL: { description: 'An unexpected internal error.', status: 500, exitCode: 1 },
} as const satisfies Record<string, DispatcherErrorSpec>;

export type DispatcherErrorCode = keyof typeof DISPATCHER_ERRORS;

export class DispatcherError extends Error {
  readonly code: DispatcherErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: DispatcherErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DispatcherError';
    this.code = code;
    this.details = options?.details;
  }

  get status(): number {
    return DISPATCHER_ERRORS[this.code].status;
  }

  get exitCode(): number {
    return DISPATCHER_ERRORS[this.code].exitCode;
  }
}

export function isDispatcherError(err: unknown, code?: DispatcherErrorCode): err is DispatcherError {
  return err instanceof DispatcherError && (code === undefined || err.code === code);
}
