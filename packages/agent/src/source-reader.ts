/**
 * The master's position and identity, read in one statement through the tunnel (source.ts says what
 * they mean). Built into the cycle by the composition root (agent.ts) as its `readSource`.
 */
import mysql from 'mysql2/promise';
import type { Dialect } from './dialect.js';
import type { SourceEndpoint } from './phases/tunnel.js';
import type { SourceState } from './source.js';

export async function readSourceState(source: SourceEndpoint, dialect: Dialect): Promise<SourceState> {
  const conn = await mysql.createConnection({ host: source.host, port: source.port, user: source.user, password: source.password, connectTimeout: 20_000 });
  try {
    const [rows] = await conn.query(dialect.sourceStateQuery());
    return dialect.parseSourceState((rows as Array<Record<string, unknown>>)[0] ?? {});
  } finally {
    await conn.end().catch(() => undefined);
  }
}
