/**
 * `@understudy/core/s3`: the S3 store, its reader and client factory, for those that build an S3
 * store themselves (tests, benchmarks). Apart from the index so that loading `@understudy/core`
 * does not load the AWS SDK; openStore (compose.ts) loads this side only for an s3:// location.
 */
export { S3Store, S3Reader, createS3Client, type S3StoreOptions, type S3ReaderOptions, type CreateS3ClientOptions } from './store/s3.js';
