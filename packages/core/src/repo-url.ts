/**
 * Repository URLs: where a repository lives, as an operator writes it. Pure parsing: nothing here
 * builds a client or touches the filesystem; the composition root turns a RepoLocation into a Store.
 *
 *   file:///abs/path          a directory on a local or mounted filesystem
 *   /abs/path, rel/path       the same (a relative path is resolved against the working directory)
 *   s3://bucket               the whole bucket
 *   s3://bucket/some/prefix   keys under some/prefix/ only
 *   ...?endpoint=http://127.0.0.1:7480&region=us-east-1&path-style=true
 *                             an S3-compatible server; an endpoint implies path-style addressing
 *                             unless path-style=false
 */
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { UnderstudyError } from './errors.js';

export type RepoLocation =
  | { readonly kind: 'file'; readonly path: string }
  | {
      readonly kind: 's3';
      readonly bucket: string;
      /** Key prefix without leading or trailing '/', '' for the whole bucket. */
      readonly prefix: string;
      readonly endpoint?: string;
      readonly region?: string;
      readonly forcePathStyle: boolean;
    };

export const REPO_URL_FORMS =
  'file:///abs/path, a plain path (/abs/path or rel/path), s3://bucket or s3://bucket/prefix ' +
  '(optionally ?endpoint=http://host:port&region=us-east-1&path-style=true|false)';

const SCHEME_RE = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const S3_RE = /^s3:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/;
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX_SEGMENT_RE = /^[A-Za-z0-9._-]+$/;
const REGION_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const S3_PARAMS = new Set(['endpoint', 'region', 'path-style']);

/** Parses a repository URL; throws US_REPO_URL_INVALID naming the URL and the accepted forms. */
export function parseRepoUrl(url: string): RepoLocation {
  if (url.trim() === '') throw invalid(url, 'it is empty');
  if (url !== url.trim()) throw invalid(url, 'it has leading or trailing white space');
  if (url.includes('\0')) throw invalid(url, 'it contains a NUL character');

  const scheme = SCHEME_RE.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'file', path: resolve(url) };
  if (scheme === 'file') return parseFileUrl(url);
  if (scheme === 's3') return parseS3Url(url);
  const hint = url.includes('://') ? '' : ` (for a relative path that contains ':', write ./${url})`;
  throw invalid(url, `unknown scheme "${scheme}:"${hint}`);
}

function parseFileUrl(url: string): RepoLocation {
  if (!url.startsWith('file://')) throw invalid(url, 'a file URL must start with file:// and name an absolute path (file:///abs/path)');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(url, 'it is not a well-formed URL');
  }
  if (parsed.search !== '' || parsed.hash !== '') throw invalid(url, 'a file URL takes no query (?...) or fragment (#...)');
  let path: string;
  try {
    path = fileURLToPath(parsed);
  } catch (err) {
    throw invalid(url, `${(err as Error).message} (write file:///abs/path, with three slashes)`);
  }
  if (path === '/') throw invalid(url, 'the repository cannot be the root directory');
  return { kind: 'file', path: resolve(path) };
}

function parseS3Url(url: string): RepoLocation {
  const m = S3_RE.exec(url);
  if (!m) throw invalid(url, 'an S3 URL is s3://bucket[/prefix][?query], without a fragment (#...)');
  const bucket = m[1] ?? '';
  checkBucket(url, bucket);
  const prefix = parsePrefix(url, m[2] ?? '');

  const params = new URLSearchParams(m[3] ?? '');
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (!S3_PARAMS.has(name)) throw invalid(url, `unknown query parameter "${name}" (accepted: endpoint, region, path-style)`);
    if (seen.has(name)) throw invalid(url, `query parameter "${name}" is given twice`);
    seen.add(name);
  }
  const endpoint = params.get('endpoint') ?? undefined;
  if (endpoint !== undefined) checkEndpoint(url, endpoint);
  const region = params.get('region') ?? undefined;
  if (region !== undefined && !REGION_RE.test(region)) throw invalid(url, `region "${region}" is not a region name (e.g. us-east-1)`);
  const pathStyle = params.get('path-style');
  let forcePathStyle: boolean;
  if (pathStyle === null) forcePathStyle = endpoint !== undefined;
  else if (pathStyle === 'true') forcePathStyle = true;
  else if (pathStyle === 'false') forcePathStyle = false;
  else throw invalid(url, `path-style must be true or false, got "${pathStyle}"`);

  return {
    kind: 's3',
    bucket,
    prefix,
    ...(endpoint !== undefined ? { endpoint: endpoint.replace(/\/+$/, '') } : {}),
    ...(region !== undefined ? { region } : {}),
    forcePathStyle,
  };
}

/** S3's bucket naming rules (general purpose buckets). */
function checkBucket(url: string, bucket: string): void {
  const rules = 'bucket names are 3 to 63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit';
  if (bucket === '') throw invalid(url, 'the bucket name is missing (s3://bucket)');
  if (!BUCKET_RE.test(bucket)) throw invalid(url, `"${bucket}" is not a valid bucket name: ${rules}`);
  if (bucket.includes('..') || bucket.includes('.-') || bucket.includes('-.')) {
    throw invalid(url, `"${bucket}" is not a valid bucket name: no two adjacent dots, and no dot next to a hyphen`);
  }
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) throw invalid(url, `"${bucket}" is not a valid bucket name: it must not look like an IP address`);
}

/** '/some/prefix/' -> 'some/prefix'; segments are what a store key allows. */
function parsePrefix(url: string, raw: string): string {
  const trimmed = raw.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') return '';
  for (const seg of trimmed.split('/')) {
    if (seg === '' || seg === '.' || seg === '..' || !PREFIX_SEGMENT_RE.test(seg)) {
      throw invalid(url, `prefix "${trimmed}" must be '/'-separated segments of letters, digits, '.', '_' and '-' (no empty, '.' or '..' segment)`);
    }
  }
  return trimmed;
}

function checkEndpoint(url: string, endpoint: string): void {
  let parsed: URL;
  try {
    parsed = new URL(endpoint);
  } catch {
    throw invalid(url, `endpoint "${endpoint}" is not an http:// or https:// URL (e.g. http://127.0.0.1:7480)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalid(url, `endpoint "${endpoint}" must be an http:// or https:// URL`);
  if (parsed.username !== '' || parsed.password !== '') {
    throw invalid(url, 'the endpoint must not carry credentials; use the AWS credential chain (AWS_ACCESS_KEY_ID, a profile, an instance role)');
  }
  if (parsed.search !== '' || parsed.hash !== '') throw invalid(url, `endpoint "${endpoint}" must not have a query or fragment`);
}

function invalid(url: string, why: string): UnderstudyError {
  const shown = url.replace(/\/\/[^/?#@]*@/g, '//***@'); // never echo user:password@
  return new UnderstudyError('US_REPO_URL_INVALID', `invalid repository URL ${JSON.stringify(shown)}: ${why}. Accepted forms: ${REPO_URL_FORMS}`, {
    details: { url: shown },
  });
}
