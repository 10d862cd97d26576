/**
 * `understudy init-master` in two halves: what is observed (the master's settings, the replication
 * account, sshd's effective configuration, the SSH account's files, the dispatcher configuration)
 * and, from that alone, what to report and what to do. This file holds the vocabulary (checks and
 * actions) and their printing. A check is a finding with its fix; an action is one change. Planning
 * is pure, so `--dry-run` prints exactly the actions a real run would take, and a second run over
 * the state the first one left plans none.
 *
 * Secrets: an action may carry the replication password (to write it or set it), but its
 * `description` and every printed form never do.
 */

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  /** What is checked: the master's MySQL settings, sshd, the SSH account, the replication account. */
  readonly area: 'mysql' | 'sshd' | 'account' | 'replication-user';
  readonly name: string;
  readonly current: string;
  readonly wanted: string;
  readonly status: CheckStatus;
  /** Statements that fix it on the running server. */
  readonly sql?: readonly string[];
  /** What fixes it for good: `[mysqld]` option-file lines (mysql), sshd_config lines (sshd), a shell command (account). */
  readonly cnf?: readonly string[];
  readonly note?: string;
}

/** One SQL statement: `sql` with `?` placeholders (mysql2 escapes `params`); `display` is safe to print. */
export interface SqlStatement {
  readonly sql: string;
  readonly params: readonly unknown[];
  readonly display: string;
}

export type Action =
  | { readonly kind: 'write-password-file'; readonly description: string; readonly path: string; readonly password: string }
  | { readonly kind: 'chmod'; readonly description: string; readonly path: string; readonly mode: number }
  | { readonly kind: 'sql'; readonly description: string; readonly statements: readonly SqlStatement[] }
  | { readonly kind: 'create-unix-user'; readonly description: string; readonly command: readonly string[] }
  | {
      readonly kind: 'write-authorized-keys';
      readonly description: string;
      readonly path: string;
      /** The whole new file; undefined: only the owner and mode are fixed. */
      readonly text: string | undefined;
      /** Owner (resolved when the action runs: a user created by an earlier action has no uid yet). */
      readonly owner: string;
      /** The directory too (`~/.ssh`): created if missing, 0700, owned by `owner`. */
      readonly manageDir: boolean;
    }
  | { readonly kind: 'write-config'; readonly description: string; readonly path: string; readonly text: string };

export interface Plan {
  readonly checks: readonly Check[];
  readonly actions: readonly Action[];
  /** Things the operator must know or do that no check or action covers (never secrets). */
  readonly notes: readonly string[];
  /** Why the plan cannot be carried out (missing flags, unusable files); empty when it can. */
  readonly blockers: readonly string[];
}

export function failedChecks(plan: Pick<Plan, 'checks'>): Check[] {
  return plan.checks.filter((c) => c.status === 'fail');
}

const AREA_TITLES: Record<Check['area'], string> = {
  mysql: 'The master\'s MySQL settings',
  'replication-user': 'The replication account',
  sshd: 'sshd, for the agent\'s SSH account',
  account: 'The agent\'s SSH account',
};

/** Where a check's `cnf` lines go. */
const FIX_LABELS: Record<Check['area'], string> = {
  mysql: 'my.cnf [mysqld]:',
  'replication-user': 'run:',
  sshd: 'sshd_config:',
  account: 'run:',
};

/** The checks, grouped by area, one line each plus indented fixes. */
export function formatChecks(checks: readonly Check[], heading: Partial<Record<Check['area'], string>> = {}): string {
  const out: string[] = [];
  for (const area of Object.keys(AREA_TITLES) as Check['area'][]) {
    const these = checks.filter((c) => c.area === area);
    if (these.length === 0) continue;
    out.push(`${heading[area] ?? AREA_TITLES[area]}:`);
    const width = Math.min(32, Math.max(...these.map((c) => c.name.length)));
    for (const c of these) {
      const tag = c.status === 'ok' ? 'ok  ' : c.status === 'warn' ? 'warn' : 'FAIL';
      out.push(`  ${tag}  ${c.name.padEnd(width)}  ${c.current}${c.status === 'ok' ? '' : `  (wanted: ${c.wanted})`}`);
      if (c.note !== undefined) out.push(`        ${c.note}`);
      if (c.status !== 'ok') {
        for (const s of c.sql ?? []) out.push(`        fix now:  ${s}`);
        for (const l of c.cnf ?? []) out.push(`        ${FIX_LABELS[c.area]} ${l}`);
      }
    }
    out.push('');
  }
  return out.join('\n');
}

/** The actions, numbered, with the statements of SQL actions. */
export function formatActions(actions: readonly Action[]): string {
  return actions
    .map((a, i) => {
      const lines = [`  ${i + 1}. ${a.description}`];
      if (a.kind === 'sql') for (const s of a.statements) lines.push(`       ${s.display}`);
      if (a.kind === 'create-unix-user') lines.push(`       ${a.command.join(' ')}`);
      return lines.join('\n');
    })
    .join('\n');
}

/** What --json prints: the plan without secrets or file contents. */
export function planSummary(plan: Plan): { checks: Check[]; actions: Array<{ kind: Action['kind']; description: string; statements?: string[] }>; notes: string[]; blockers: string[] } {
  return {
    checks: [...plan.checks],
    actions: plan.actions.map((a) => ({ kind: a.kind, description: a.description, ...(a.kind === 'sql' ? { statements: a.statements.map((s) => s.display) } : {}) })),
    notes: [...plan.notes],
    blockers: [...plan.blockers],
  };
}
