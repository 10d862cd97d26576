/**
 * The EC2 client, re-exported from an ES module of ours: ec2-factory.ts imports this with import()
 * so the SDK loads only for a target that uses EC2. A CommonJS package imported with import()
 * directly offers only its default export in a split esbuild bundle (the Debian package's), where
 * a static import of it, as here, keeps the named ones.
 */
export { EC2Client } from '@aws-sdk/client-ec2';
