/**
 * undici's Agent on its own (store/s3-reader.ts imports it by path: loading all of undici costs
 * about 50 ms more CPU at every S3 command's start). undici 7 has no `exports` map, so the path
 * resolves; s3-reader.test.ts checks that it is the very class `undici` exports.
 */
declare module 'undici/lib/dispatcher/agent.js' {
  import type { Agent } from 'undici';
  const AgentClass: typeof Agent;
  export default AgentClass;
}
