/** Credentials out of every text that leaves a process: it lives in @understudy/protocol (packages/protocol/src/redact.ts). */
export { REDACTED, redactEvent, redactLogArguments, redactingLogHooks, redactSecrets, statementKind } from '@understudy/protocol';
