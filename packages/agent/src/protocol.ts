/**
 * What the dispatcher and the agent agree on, and nothing else: the run document (user-data) and the
 * events the agent reports. A separate entry point (`@understudy/agent/protocol`) so the dispatcher
 * validates with the same schemas without loading ssh2, mysql2 or the agent's AWS clients.
 */
export * from './run-config.js';
export * from './events.js';
export * from './redact.js';
