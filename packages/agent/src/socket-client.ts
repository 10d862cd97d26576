/** mysql2 over a unix socket as root: the client core's temporary mysqld (the archive phase) is given. */
import type { SqlClient } from '@understudy/core';
import mysql from 'mysql2/promise';

export function socketClient(socket: string): SqlClient {
  const pool = mysql.createPool({ socketPath: socket, user: 'root', connectionLimit: 1 });
  return {
    query: async <T>(sql: string): Promise<T[]> => (await pool.query(sql))[0] as T[],
    end: () => pool.end(),
  };
}
