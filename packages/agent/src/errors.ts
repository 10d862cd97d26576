/**
 * The one error registry of @understudy/agent. Every error the agent throws on purpose is an
 * AgentError with a stable code from this table; only the agent's entry point (`main.ts`) turns
 * codes into exit codes (see `exitCode`). Codes are prefixed `AG_` so they never collide with
 * core's `US_` codes in logs and reports.
 */
import { defineErrors, type ErrorSpec, type RegisteredError } from '@understudy/core';

export const AGENT_ERRORS = {
  AG_CONFIG_INVALID: { description: 'An agent configuration value or option is invalid.', exitCode: 2, retryable: false },
  AG_ABORTED: { description: 'The operation was aborted by its caller.', exitCode: 130, retryable: false },
  AG_TUNNEL_HOST_KEY_MISMATCH: { description: 'The SSH server presented a host key whose fingerprint is not the pinned one (at connect or on re-key). Never retried.', exitCode: 20, retryable: false },
  AG_TUNNEL_AUTH_FAILED: { description: 'The SSH server refused our key (after the configured retries with a fresh key).', exitCode: 21, retryable: false },
  AG_TUNNEL_UNAVAILABLE: { description: 'The SSH tunnel could not be (re)established: connection refused, timed out or lost (after retries).', exitCode: 22, retryable: true },
  AG_TUNNEL_FORWARD_REFUSED: { description: 'The SSH server refused to open a forwarded channel (destination not in PermitOpen, or unreachable from the server).', exitCode: 23, retryable: false },
  AG_TUNNEL_LISTEN_FAILED: { description: 'A local listener of the tunnel could not be bound (address in use or not local).', exitCode: 24, retryable: false },
  AG_INSTANCE_CONNECT_FAILED: { description: 'EC2 Instance Connect did not accept our ephemeral public key (SendSSHPublicKey failed).', exitCode: 25, retryable: true },
  AG_SECRET_UNAVAILABLE: { description: 'A secret named by the run document (replication password, repository key) could not be read.', exitCode: 3, retryable: false },
  AG_SEED_FAILED: { description: 'Seeding the first backup from the master failed (dump or load).', exitCode: 3, retryable: false },
  AG_ERRANT_TRANSACTIONS: { description: 'The backup holds transactions the master does not have: it is not a copy of this master\'s history.', exitCode: 3, retryable: false },
  AG_BINLOGS_PURGED: { description: 'The master no longer has the binary logs needed to catch up from the backup (error 1236); a new seed is needed.', exitCode: 3, retryable: false },
  AG_REPLICATION_ACCOUNT_MISMATCH: { description: 'Replication stopped on an account statement (ALTER USER, SET PASSWORD, DROP USER, RENAME USER: error 1396 or 1133) for an account the backup does not hold: a backup seeded before accounts were copied, or an account changed outside replication. A new seed is needed.', exitCode: 3, retryable: false },
  AG_REPLICATION_SQL_ERROR: { description: 'Replication stopped on an SQL error while catching up.', exitCode: 3, retryable: false },
  AG_CATCH_UP_TIMEOUT: { description: 'The goal position was not reached before the catch-up limit or the run deadline.', exitCode: 3, retryable: false },
  AG_DEADLINE_PASSED: { description: 'The run deadline passed before the cycle finished; the instance powers off.', exitCode: 3, retryable: false },
  AG_SOURCE_READ_ONLY: { description: 'The master is read-only (read_only=ON): likely a replica after a failover. Nothing was restored or uploaded; point the dispatcher at the current primary.', exitCode: 3, retryable: false },
  AG_SOURCE_NOT_STRICT: { description: 'The MariaDB master runs without gtid_strict_mode: with two writers in a domain, positions cannot say whether the goal was executed. Nothing was restored or uploaded; turn gtid_strict_mode on.', exitCode: 3, retryable: false },
  AG_MYSQLD_FAILED: { description: 'The local database server failed to start or to shut down cleanly.', exitCode: 3, retryable: false },
  AG_INTERNAL: { description: 'An unexpected internal error.', exitCode: 1, retryable: false },
} as const satisfies Record<string, ErrorSpec>;

export type AgentErrorCode = keyof typeof AGENT_ERRORS;

const registry = defineErrors<'AG', AgentErrorCode, ErrorSpec>('AG', AGENT_ERRORS, 'AgentError');

export const AgentError = registry.Error;
export type AgentError = RegisteredError<AgentErrorCode, ErrorSpec>;

export const isAgentError: (err: unknown, code?: AgentErrorCode) => err is AgentError = registry.is;

/** Exit code for any thrown value: registry codes map through AGENT_ERRORS, anything else is 1. */
export const agentExitCodeOf: (err: unknown) => number = registry.exitCodeOf;
