/**
 * IAM policy documents as the generator writes them, and a checker for what "least privilege" means
 * here: every statement allows named actions (no '*' or '?' in an action), on ARNs scoped to one
 * partition, region and account (no wildcard in those fields), and `"Resource": "*"` only for
 * actions that support no resource-level permissions at all. The command runs the checker on its own
 * output before printing it; the tests run it with an allow-list of their own.
 */

export type ConditionValues = string | readonly string[];
/** Condition operator -> condition key -> value(s), as IAM writes it. */
export type Condition = Readonly<Record<string, Readonly<Record<string, ConditionValues>>>>;

export interface PolicyStatement {
  /** Letters and digits only (IAM refuses anything else in an identity policy's Sid). */
  readonly Sid: string;
  readonly Effect: 'Allow';
  readonly Action: readonly string[];
  readonly Resource: readonly string[];
  readonly Condition?: Condition;
}

export interface PolicyDocument {
  readonly Version: '2012-10-17';
  readonly Statement: readonly PolicyStatement[];
}

/** A generated policy and what the operator should know about it (printed on stderr). */
export interface GeneratedPolicy {
  readonly document: PolicyDocument;
  readonly notes: readonly string[];
}

/**
 * The actions this generator may grant on `"Resource": "*"`, each because the service authorization
 * reference lists no resource type for it: IAM accepts nothing narrower.
 */
export const WILDCARD_RESOURCE_ACTIONS: ReadonlyMap<string, string> = new Map([
  // The watchdog asks for one instance by id and the orphan sweep filters on our tags; the filters
  // are not an IAM control, and DescribeInstances has no resource-level permissions.
  ['ec2:DescribeInstances', 'DescribeInstances supports no resource-level permissions'],
  // Asked once per launcher for the AMI's root device name; no resource-level permissions either.
  ['ec2:DescribeImages', 'DescribeImages supports no resource-level permissions'],
]);

/** Condition operators the generator uses (a typo like 'StringEqual' would make IAM refuse the policy). */
export const CONDITION_OPERATORS: ReadonlySet<string> = new Set(['StringEquals', 'StringLike', 'ArnEquals', 'ArnLike', 'ForAllValues:StringEquals']);

/** Condition keys the generator uses, checked against the service authorization reference; `/` ends a prefix. */
export const CONDITION_KEYS: readonly string[] = [
  'aws:RequestTag/',
  'aws:TagKeys',
  'ec2:ResourceTag/',
  'ec2:CreateAction',
  'ec2:InstanceType',
  'ec2:Subnet',
  'ec2:osuser',
  'iam:PassedToService',
  's3:prefix',
  // The If-None-Match header of a PutObject (S3 conditional writes; "Enforce conditional writes on Amazon S3 buckets").
  's3:if-none-match',
  'kms:ViaService',
];

export interface LintOptions {
  /** Actions allowed on `"Resource": "*"`; default WILDCARD_RESOURCE_ACTIONS. */
  readonly wildcardResourceActions?: ReadonlySet<string> | ReadonlyMap<string, string>;
}

const STATEMENT_KEYS = new Set(['Sid', 'Effect', 'Action', 'Resource', 'Condition']);
const ACTION_RE = /^[a-z0-9-]+:[A-Za-z0-9]+$/;
const ARN_HEAD_RE = /^arn:([^:]*):([^:]*):([^:]*):([^:]*):(.+)$/;

/**
 * Every way `doc` departs from the grammar or from least privilege, one line each; [] when it is
 * fine. Takes `unknown` so that a hand-widened or parsed document can be checked too.
 */
export function lintPolicy(doc: unknown, options: LintOptions = {}): string[] {
  const allowed = options.wildcardResourceActions ?? WILDCARD_RESOURCE_ACTIONS;
  const problems: string[] = [];
  if (!isObject(doc)) return ['the policy is not a JSON object'];
  for (const key of Object.keys(doc)) if (key !== 'Version' && key !== 'Statement') problems.push(`unexpected top-level key '${key}'`);
  if (doc.Version !== '2012-10-17') problems.push(`Version must be '2012-10-17', got ${JSON.stringify(doc.Version)}`);
  if (!Array.isArray(doc.Statement) || doc.Statement.length === 0) {
    problems.push('Statement must be a non-empty array');
    return problems;
  }
  const sids = new Set<string>();
  doc.Statement.forEach((s: unknown, i: number) => {
    const where = `Statement[${i}]`;
    if (!isObject(s)) return problems.push(`${where} is not an object`);
    for (const key of Object.keys(s)) if (!STATEMENT_KEYS.has(key)) problems.push(`${where} has '${key}' (only ${[...STATEMENT_KEYS].join(', ')} are generated)`);
    const sid = s.Sid;
    if (typeof sid !== 'string' || !/^[A-Za-z0-9]+$/.test(sid)) problems.push(`${where}.Sid must be letters and digits, got ${JSON.stringify(sid)}`);
    else if (sids.has(sid)) problems.push(`${where}.Sid '${sid}' is used twice`);
    else sids.add(sid);
    const label = typeof sid === 'string' ? `${where} (${sid})` : where;
    if (s.Effect !== 'Allow') problems.push(`${label}.Effect must be 'Allow', got ${JSON.stringify(s.Effect)}`);
    const actions = stringList(s.Action);
    if (actions === undefined) problems.push(`${label}.Action must be a non-empty list of strings`);
    for (const a of actions ?? []) if (!ACTION_RE.test(a)) problems.push(`${label} grants '${a}': actions are named one by one (no '*' or '?')`);
    const resources = stringList(s.Resource);
    if (resources === undefined) problems.push(`${label}.Resource must be a non-empty list of strings`);
    for (const r of resources ?? []) {
      if (r === '*') {
        const wide = (actions ?? []).filter((a) => !allowed.has(a));
        if (wide.length > 0) problems.push(`${label} grants ${wide.join(', ')} on '*': only actions without resource-level permissions may (${[...allowed.keys()].join(', ')})`);
        continue;
      }
      const m = ARN_HEAD_RE.exec(r);
      if (!m) {
        problems.push(`${label} has resource '${r}', which is neither '*' nor an ARN`);
        continue;
      }
      const [, partition, service, region, account] = m;
      for (const [field, value] of [['partition', partition], ['service', service], ['region', region], ['account', account]] as const) {
        if (/[*?]/.test(value ?? '')) problems.push(`${label} has resource '${r}' with a wildcard in its ${field}`);
      }
    }
    if (s.Condition !== undefined) problems.push(...lintCondition(s.Condition, label));
  });
  return problems;
}

function lintCondition(condition: unknown, label: string): string[] {
  if (!isObject(condition) || Object.keys(condition).length === 0) return [`${label}.Condition must be a non-empty object`];
  const problems: string[] = [];
  for (const [operator, block] of Object.entries(condition)) {
    if (!CONDITION_OPERATORS.has(operator)) problems.push(`${label} uses condition operator '${operator}' (known: ${[...CONDITION_OPERATORS].join(', ')})`);
    if (!isObject(block) || Object.keys(block).length === 0) {
      problems.push(`${label}.Condition.${operator} must be a non-empty object`);
      continue;
    }
    for (const [key, values] of Object.entries(block)) {
      const known = CONDITION_KEYS.some((k) => (k.endsWith('/') ? key.startsWith(k) && key.length > k.length : key === k));
      if (!known) problems.push(`${label} uses condition key '${key}' (known: ${CONDITION_KEYS.join(', ')})`);
      const list = typeof values === 'string' ? [values] : stringList(values);
      if (list === undefined || list.some((v) => v === '')) problems.push(`${label}.Condition.${operator}.${key} must be a non-empty string or list of them`);
    }
  }
  return problems;
}

function stringList(value: unknown): string[] | undefined {
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string')) return undefined;
  return value as string[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
