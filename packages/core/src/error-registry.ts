/**
 * The shape every package's error registry shares (core's errors.ts, the agent's and the
 * dispatcher's): a table of codes, each with a description and an exit code (and fields of the
 * package's own: core's `retryable`, the dispatcher's HTTP `status`), and from it one error class,
 * its guard and its exit-code mapping, typed by the table's codes.
 */

/** What every row of a registry holds. */
export interface ErrorEntry {
  /** Human-readable meaning, shown in docs. */
  readonly description: string;
  /** Process exit code a command uses when this error ends it. */
  readonly exitCode: number;
}

export interface RegistryErrorOptions {
  readonly cause?: unknown;
  /** Structured details for logs and --json output (never secrets). */
  readonly details?: Record<string, unknown>;
}

/** An error of a registry: its code, details, and the fields of its code's row (`exitCode`, ...). */
export type RegisteredError<C extends string, S extends ErrorEntry> = Error & {
  readonly code: C;
  readonly details: Record<string, unknown> | undefined;
} & { readonly [K in Exclude<keyof S, 'description'>]: S[K] };

export interface RegisteredErrorClass<C extends string, S extends ErrorEntry> {
  new (code: C, message: string, options?: RegistryErrorOptions): RegisteredError<C, S>;
  readonly prototype: RegisteredError<C, S>;
}

export interface ErrorRegistry<C extends string, S extends ErrorEntry> {
  /** Every code starts with it and an underscore (`US`, `AG`, `DS`). */
  readonly prefix: string;
  readonly table: Readonly<Record<C, S>>;
  /** The error class (its `name` is the one given to defineErrors). */
  readonly Error: RegisteredErrorClass<C, S>;
  /** Whether `err` is an error of this registry (with `code`, when given). */
  is(err: unknown, code?: C): err is RegisteredError<C, S>;
  /** Exit code for any thrown value: this registry's codes map through the table, anything else is 1. */
  exitCodeOf(err: unknown): number;
  /** Whether `code` is one of the table's (a code read off the wire, say). */
  isCode(code: string): code is C;
}

/**
 * The registry of `table`, whose codes all start with `prefix` and `_`, for errors named `name`.
 * Each field of the rows but `description` is a getter of the errors (`err.exitCode`, `err.retryable`).
 */
export function defineErrors<P extends string, C extends `${P}_${string}`, S extends ErrorEntry>(prefix: P, table: Readonly<Record<C, S>>, name: string): ErrorRegistry<C, S> {
  for (const code of Object.keys(table)) {
    if (!new RegExp(`^${prefix}_[A-Z0-9]+(_[A-Z0-9]+)*$`).test(code)) throw new Error(`error code ${code} does not start with ${prefix}_ or is not in capitals`);
  }
  class Registered extends Error {
    readonly code: C;
    readonly details: Record<string, unknown> | undefined;

    constructor(code: C, message: string, options?: RegistryErrorOptions) {
      super(message, options?.cause === undefined ? undefined : { cause: options.cause });
      this.name = name;
      this.code = code;
      this.details = options?.details;
    }
  }
  // Named as its errors are: loggers (pino's `type`) name an error by its constructor.
  Object.defineProperty(Registered, 'name', { value: name });
  const rows: S[] = Object.values(table);
  for (const field of new Set(rows.flatMap((row) => Object.keys(row)))) {
    if (field === 'description') continue;
    Object.defineProperty(Registered.prototype, field, {
      get(this: Registered): unknown {
        return (table[this.code] as unknown as Record<string, unknown>)[field];
      },
    });
  }
  const ErrorClass = Registered as unknown as RegisteredErrorClass<C, S>;
  return {
    prefix,
    table,
    Error: ErrorClass,
    is: (err: unknown, code?: C): err is RegisteredError<C, S> => err instanceof ErrorClass && (code === undefined || err.code === code),
    exitCodeOf: (err: unknown): number => (err instanceof ErrorClass ? (err.exitCode as number) : 1),
    isCode: (code: string): code is C => Object.hasOwn(table, code),
  };
}
