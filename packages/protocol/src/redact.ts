/**
 * Credentials out of every error text that leaves a process: the agent's log lines and reports, and
 * (again, for reports of older agents) the dispatcher's log and run database.
 *
 * The danger is SQL quoted back by a server. MariaDB's Last_SQL_Error ends with the statement that
 * failed, verbatim (`... Query: 'ALTER USER 'u'@'%' IDENTIFIED BY 'pw''`), and a syntax error quotes
 * the text near it. Those quotes nest without escaping, so no tokenizer can follow them; the rules
 * below anchor on keywords instead, and a literal they remove runs to its closing quote (an escaped
 * `\'` or a doubled `''` does not close it) or to the end of the text: when in doubt they remove
 * more, never less.
 *
 * 1. `Query: '<statement>'` (the statement a replica failed to apply): everything up to the last
 *    quote of the text becomes the statement's kind (`ALTER USER`, `INSERT INTO`): its data can be a
 *    secret too, whatever the statement.
 * 2. Anywhere else: the literal after `IDENTIFIED BY [PASSWORD]`, every literal after
 *    `IDENTIFIED VIA|WITH plugin` that follows `USING`, `AS` or `BY`, `PASSWORD('...')` (and
 *    `OLD_PASSWORD`, `ENCRYPT`...), `SET PASSWORD [FOR u] = ...`, and `<word>PASSWORD<word> = '...'`
 *    or `PASSWORD '...'` (`MASTER_PASSWORD='...'`, `SOURCE_PASSWORD`, a federated server's
 *    `OPTIONS (PASSWORD '...')`).
 */

export const REDACTED = '<redacted>';

/** Whitespace or a C comment between two words. */
const SEP = String.raw`(?:\s|/\*[\s\S]*?\*/)+`;
const OPT_SEP = String.raw`(?:\s|/\*[\s\S]*?\*/)*`;
/**
 * A string literal, either quote, with an optional charset introducer (`_utf8mb4'...'`) or `N`
 * prefix. Unterminated (a truncated message): to the end of the text.
 */
const LITERAL = String.raw`(?:_[A-Za-z0-9]+|[Nn])?(?:'(?:[^'\\]|\\[\s\S]|'')*(?:'|$)|"(?:[^"\\]|\\[\s\S]|"")*(?:"|$))`;
/** A function of a literal that hides a password: PASSWORD('x'), OLD_PASSWORD("x"), ENCRYPT('x'). */
const CALL = String.raw`[A-Za-z_][A-Za-z0-9_]*${OPT_SEP}\(${OPT_SEP}${LITERAL}(?:${OPT_SEP}\))?`;
const SECRET_VALUE = `(?:${LITERAL}|${CALL})`;
const SECRET_WORD = String.raw`[A-Za-z0-9_]*(?:PASSWORD|PASSWD)[A-Za-z0-9_]*`;

/** Words that name what a statement does on (the second word of `ALTER USER`, `INSERT INTO`). */
const OBJECT_WORDS = new Set([
  'USER', 'ROLE', 'TABLE', 'DATABASE', 'SCHEMA', 'INDEX', 'VIEW', 'PROCEDURE', 'FUNCTION', 'TRIGGER', 'EVENT',
  'SERVER', 'INTO', 'PASSWORD', 'IGNORE', 'LOW_PRIORITY', 'DELAYED', 'HIGH_PRIORITY', 'FROM', 'SEQUENCE', 'TEMPORARY', 'OR', 'DEFINER',
]);

/** `ALTER USER 'u'@'%' IDENTIFIED BY 'pw'` -> `ALTER USER`; nothing that the statement carries. */
export function statementKind(statement: string): string {
  const words = statement
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .trim()
    .split(/[^A-Za-z_]+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w.toUpperCase());
  if (words.length === 0) return 'statement';
  return words[1] !== undefined && OBJECT_WORDS.has(words[1]) ? `${words[0]} ${words[1]}` : words[0]!;
}

/**
 * From `Query: '` to the end of the text, keeping only closing punctuation after the last quote (the
 * `)` of a wrapping message): text after a last quote can also be the rest of a truncated statement.
 */
const QUERY_PART = /\bQuery:\s*'([\s\S]*?)(?:'([\s).,;\]]*))?$/;

const IDENTIFIED_BY = new RegExp(String.raw`\b(IDENTIFIED${SEP}BY(?:${SEP}PASSWORD)?${OPT_SEP})${SECRET_VALUE}`, 'gi');
const IDENTIFIED_PLUGIN = new RegExp(String.raw`\bIDENTIFIED${SEP}(?:VIA|WITH)\b[\s\S]*$`, 'i');
const PLUGIN_SECRET = new RegExp(String.raw`\b((?:USING|AS|BY)${OPT_SEP})${SECRET_VALUE}`, 'gi');
const SET_PASSWORD = new RegExp(String.raw`\b(SET${SEP}PASSWORD\b[^=]*=${OPT_SEP})${SECRET_VALUE}`, 'gi');
const PASSWORD_CALL = new RegExp(String.raw`\b((?:OLD_)?PASSWORD|ENCRYPT|DES_ENCRYPT|AES_ENCRYPT|ENCODE|SHA1|SHA2|MD5)(${OPT_SEP}\(${OPT_SEP})${LITERAL}`, 'gi');
const PASSWORD_ASSIGN = new RegExp(String.raw`\b(${SECRET_WORD}(?:${OPT_SEP}[=:]${OPT_SEP}|${SEP}))${LITERAL}`, 'gi');

const QUOTED = `'${REDACTED}'`;

/** The text with every credential and quoted statement it carries replaced (see the module comment). */
export function redactSecrets(text: string): string {
  let out = text;
  const query = QUERY_PART.exec(out);
  if (query) out = `${out.slice(0, query.index)}Query: '${statementKind(query[1]!)} statement, ${REDACTED}'${query[2] ?? ''}`;
  out = out.replace(IDENTIFIED_BY, (_m, head: string) => `${head}${QUOTED}`);
  const plugin = IDENTIFIED_PLUGIN.exec(out);
  if (plugin) out = out.slice(0, plugin.index) + plugin[0].replace(PLUGIN_SECRET, (_m, head: string) => `${head}${QUOTED}`);
  out = out.replace(SET_PASSWORD, (_m, head: string) => `${head}${QUOTED}`);
  out = out.replace(PASSWORD_CALL, (_m, fn: string, open: string) => `${fn}${open}${QUOTED}`);
  out = out.replace(PASSWORD_ASSIGN, (_m, head: string) => `${head}${QUOTED}`);
  return out;
}

interface Redactable {
  readonly [key: string]: unknown;
  message?: string | undefined;
  error?: { code: string; message: string } | undefined;
}

/** A report with its free text (message, error message) redacted; everything else as it was. */
export function redactEvent<T extends Redactable>(event: T): T {
  return {
    ...event,
    ...(event.message !== undefined ? { message: redactSecrets(event.message) } : {}),
    ...(event.error !== undefined ? { error: { ...event.error, message: redactSecrets(event.error.message) } } : {}),
  };
}

/**
 * A log call's arguments with their text redacted: the message, the string fields of the object
 * (one level down too: `{ error: { message } }`), and an Error's message and stack. For pino's
 * `hooks.logMethod`, so every line of a logger is covered.
 */
export function redactLogArguments(args: readonly unknown[]): unknown[] {
  return args.map((a) => redactValue(a, 2));
}

/**
 * pino's `hooks` option that redacts every line of a logger (`pino({ hooks: redactingLogHooks })`):
 * the agent's and the dispatcher's loggers both use it. Typed structurally, so this package needs no pino.
 */
export const redactingLogHooks = {
  logMethod<This, A extends unknown[]>(this: This, args: A, method: (this: This, ...a: A) => void): void {
    method.apply(this, redactLogArguments(args) as A);
  },
};

function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (value instanceof Error) {
    const out: Record<string, unknown> = { type: value.name, message: redactSecrets(value.message) };
    if (value.stack !== undefined) out.stack = redactSecrets(value.stack);
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    return out;
  }
  if (depth === 0 || value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, depth - 1)]));
}
