/**
 * Test helpers for Store implementations, published as `@understudy/core/testing` so that the
 * library's own import graph (`@understudy/core`) never loads node:test.
 */
export { storeConformance } from './store/conformance.js';
export { compareTrees, makeTree, seededBytes, randomData, type TreeSpec, type TreeNode, type CompareOptions } from './testing/trees.js';
export { localRepository, tempDir } from './testing/repo.js';
export { binlogFile, fixtureEvents, fixtureFileStart, fixtureTransaction, type FixtureEvent } from './testing/binlog.js';
export { archiveHistory, fixtureHistory, HISTORY_SERVER, HISTORY_T0 } from './testing/archive.js';
export { archiveTimeline } from './testing/archive.js';
export { SegmentReadMeter } from './testing/segment-meter.js';
export { ForwardingStore } from './testing/forwarding-store.js';
