/** The events an agent reports: they live in @understudy/protocol (packages/protocol/src/events.ts). */
export { EVENTS_ROUTE, eventsPath, PHASES, RunEventSchema, type Phase, type RunEvent, type RunEventInput } from '@understudy/protocol';
