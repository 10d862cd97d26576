/**
 * @understudy/protocol: what the dispatcher and the agent agree on, and nothing else. The run
 * document (user-data) the dispatcher writes and the agent parses, the events the agent reports and
 * the route it posts them to, the error codes a report may carry, and the redaction of the free text
 * that leaves either process. It depends on zod only: the dispatcher validates with the agent's
 * schemas without installing ssh2, mysql2 or the agent's AWS clients.
 */
export * from './run-config.js';
export * from './events.js';
export * from './error-codes.js';
export * from './redact.js';
