/**
 * The reconnect policy: after a failed attempt, give up or wait (exponential backoff with jitter).
 * Before the first connection, transient failures are retried until `connectTimeoutMs` or
 * `connectAttempts`; after it, for ever (the tunnel outlives outages; the run's deadline bounds it).
 * Authentication failures are retried `authRetries` times in a row (a pushed Instance Connect key
 * may have expired); anything not retryable (a host key mismatch) is final at once. A connection
 * that stayed up `resetAfterMs` resets the backoff.
 */
import { AgentError, isAgentError } from '../errors.js';
import { messageOf, type ResolvedOptions } from './options.js';

/** Give up with `giveUp`, or retry: `retryInMs` is the backoff (logged), `waitMs` the wait (capped by connectTimeoutMs before the first connection). */
export type AfterFailure = { readonly giveUp: AgentError } | { readonly error: AgentError; readonly retryInMs: number; readonly waitMs: number };

export class ReconnectPolicy {
  private readonly startedAt = Date.now();
  private step = 0;
  private attempts = 0;
  private authFailures = 0;
  private everConnected = false;

  constructor(private readonly o: ResolvedOptions) {}

  /** Has a connection ever been ready (this is a reconnect, not the first open)? */
  get connectedBefore(): boolean {
    return this.everConnected;
  }

  /** Counts an attempt: its number since the last ready connection. */
  attempt(): number {
    return ++this.attempts;
  }

  failed(err: unknown): AfterFailure {
    const e = isAgentError(err) ? err : new AgentError('AG_TUNNEL_UNAVAILABLE', messageOf(err), { cause: err });
    if (e.code === 'AG_TUNNEL_AUTH_FAILED') {
      this.authFailures += 1;
      if (this.authFailures > this.o.authRetries) return { giveUp: e };
    } else if (!e.retryable) {
      return { giveUp: e };
    }
    if (!this.everConnected) {
      const elapsed = Date.now() - this.startedAt;
      if (elapsed >= this.o.connectTimeoutMs || this.attempts >= this.o.connectAttempts) {
        const { host, port } = this.o;
        return {
          giveUp: new AgentError('AG_TUNNEL_UNAVAILABLE', `SSH tunnel to ${host}:${port} not established after ${this.attempts} attempts in ${elapsed} ms: ${e.message}`, {
            cause: e,
            details: { attempts: this.attempts, elapsedMs: elapsed },
          }),
        };
      }
    }
    const delay = this.nextDelay();
    return { error: e, retryInMs: delay, waitMs: this.everConnected ? delay : Math.min(delay, Math.max(0, this.startedAt + this.o.connectTimeoutMs - Date.now())) };
  }

  connected(): void {
    this.authFailures = 0;
    this.everConnected = true;
    this.attempts = 0;
  }

  /** A ready connection ended after `uptimeMs`: how long to wait before reconnecting. */
  lost(uptimeMs: number): number {
    if (uptimeMs >= this.o.reconnect.resetAfterMs) this.step = 0;
    return this.nextDelay();
  }

  private nextDelay(): number {
    return backoff(this.step++, this.o.reconnect.initialDelayMs, this.o.reconnect.maxDelayMs);
  }
}

/** Exponential backoff with jitter: a uniform draw in [d/2, d] where d = min(max, initial * 2^step). */
export function backoff(step: number, initialMs: number, maxMs: number): number {
  const d = Math.min(maxMs, initialMs * 2 ** Math.min(step, 30));
  return Math.round(d / 2 + (Math.random() * d) / 2);
}
