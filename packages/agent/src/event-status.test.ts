import assert from 'node:assert/strict';
import { it } from 'node:test';
import { eventKey, eventStatusFixes, type EventStatus } from './event-status.js';

it("events replication disabled get the master's ENABLED or DISABLED back; the master's own DISABLE ON SLAVE and events it no longer has stay", () => {
  const master = new Map<string, EventStatus>([
    [eventKey('app', 'on'), 'ENABLED'],
    [eventKey('app', 'off'), 'DISABLED'],
    [eventKey('app', 'replica_once'), 'SLAVESIDE_DISABLED'],
    [eventKey('a.b', 'c'), 'ENABLED'],
  ]);
  const local = [
    { db: 'app', name: 'on' },
    { db: 'app', name: 'off' },
    { db: 'app', name: 'replica_once' },
    { db: 'app', name: 'dropped_since' },
    { db: 'a', name: 'b.c' }, // not `a.b`.`c`
    { db: 'a.b', name: 'c' },
  ];
  assert.deepEqual(eventStatusFixes(local, master), [
    { db: 'app', name: 'on', status: 'ENABLED' },
    { db: 'app', name: 'off', status: 'DISABLED' },
    { db: 'a.b', name: 'c', status: 'ENABLED' },
  ]);
});
