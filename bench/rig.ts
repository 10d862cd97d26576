/**
 * The test rig's radosgw helpers. The source path (../test/rig/radosgw.ts, typed through the test
 * project's reference) and the compiled one (test/dist/rig/radosgw.js, seen from bench/dist/) differ
 * in depth, so tsc's unchanged import specifier would not resolve at run time: the types come from
 * the source path, the module is loaded from the compiled one.
 */
import type * as Rig from '../test/rig/radosgw.js';

export type { Radosgw, S3Endpoint } from '../test/rig/radosgw.js';

// The AWS SDK's Node-version warning (under Node 20) would print in every benchmark log from the
// rig's own clients and the measured processes, which inherit this environment; the CLI and the
// agent quiet it the same way.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const rig = (await import(new URL('../../test/dist/rig/radosgw.js', import.meta.url).href)) as typeof Rig;
export const { createBucket, s3Client, startRadosgw, stopOnSignals } = rig;
