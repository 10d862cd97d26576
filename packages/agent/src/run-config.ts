/** The run document: it lives in @understudy/protocol (packages/protocol/src/run-config.ts). */
export {
  parseRunConfig,
  RunConfigSchema,
  SecretSourceSchema,
  type ConfigProblem,
  type ParsedRunConfig,
  type RunConfig,
  type RunConfigInput,
  type SecretSource,
} from '@understudy/protocol';
