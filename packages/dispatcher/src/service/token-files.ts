/**
 * The names of the service's token files in its state directory (server.ts makes them; the CLI
 * reads them without loading the service).
 */
export const ADMIN_TOKEN_FILE = 'admin.token';
/** Reads only (GET /runs, /runs/:id, /metrics): the status page's link and Prometheus hold this one, never the admin token. */
export const READ_TOKEN_FILE = 'read.token';
