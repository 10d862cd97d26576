/**
 * `@understudy/agent/protocol`: kept for callers of the old entry point. What the dispatcher and the
 * agent agree on lives in @understudy/protocol (packages/protocol); import it from there.
 */
export * from '@understudy/protocol';
