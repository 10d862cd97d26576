import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REDACTED, redactEvent, redactLogArguments, redactSecrets, statementKind } from './redact.js';

/** [statement or error text, the secrets that must be gone, text that must remain] */
const CASES: [string, string[], string[]][] = [
  // MariaDB's Last_SQL_Error: the failed statement, verbatim, after "Query:".
  [
    "Error 'Operation ALTER USER failed for 'understudy_repl'@'%'' on query. Default database: ''. Query: 'ALTER USER 'understudy_repl'@'%' IDENTIFIED BY 'n3w-Secret''",
    ['n3w-Secret'],
    ["Error 'Operation ALTER USER failed for 'understudy_repl'@'%'' on query", "Query: 'ALTER USER statement, <redacted>'"],
  ],
  [
    "replication stopped on an error (1396: Error 'Operation CREATE USER failed for 'ghost'@'%'' on query. Default database: 'app'. Query: 'CREATE USER 'ghost'@'%' IDENTIFIED BY 'pa\\'ss;word'')",
    ['pa\\\'ss', 'ss;word', "pa'ss"],
    ['replication stopped on an error (1396', "Query: 'CREATE USER statement, <redacted>')"],
  ],
  // The data of any statement can be a secret: the query is replaced whatever it is.
  [
    "Error 'Table 'app.vault' doesn't exist' on query. Default database: 'app'. Query: 'INSERT INTO vault VALUES ('api-key-123456')'",
    ['api-key-123456', 'vault VALUES'],
    ["Query: 'INSERT INTO statement, <redacted>'"],
  ],
  // Truncated (MariaDB cuts Last_SQL_Error; the report cuts at 4000): no closing quote at all.
  ["Error 'x' on query. Default database: ''. Query: 'GRANT ALL ON *.* TO 'a'@'%' IDENTIFIED BY 'trunc-secr", ['trunc-secr'], ["Query: 'GRANT statement, <redacted>"]],
  // Statements quoted elsewhere (a syntax error's "near '...'", a client's own message).
  ["CREATE USER 'a'@'%' IDENTIFIED BY 'plain-secret'", ['plain-secret'], [`IDENTIFIED BY '${REDACTED}'`, "CREATE USER 'a'@'%'"]],
  ['create user a identified   by "double-quoted-secret"', ['double-quoted-secret'], [`identified   by '${REDACTED}'`]],
  ["ALTER USER a IDENTIFIED\n  BY 'newline-secret'", ['newline-secret'], []],
  ["ALTER USER a IDENTIFIED /* c */ BY 'comment-secret'", ['comment-secret'], []],
  ["ALTER USER a IDENTIFIED BY 'it''s-doubled-secret'", ['doubled-secret', "it''s"], []],
  ['ALTER USER a IDENTIFIED BY "dq\\"escaped-secret"', ['escaped-secret'], []],
  ["ALTER USER a IDENTIFIED BY _utf8mb4'introducer-secret'", ['introducer-secret'], []],
  ["GRANT USAGE ON *.* TO 'a'@'%' IDENTIFIED BY PASSWORD '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'", ['2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'], []],
  ["CREATE USER a IDENTIFIED VIA ed25519 USING PASSWORD('ed-secret')", ['ed-secret'], ['IDENTIFIED VIA ed25519 USING']],
  ["CREATE USER a IDENTIFIED VIA mysql_native_password USING '*hash-secret-1' OR unix_socket", ['hash-secret-1'], ['OR unix_socket']],
  ["CREATE USER a IDENTIFIED VIA pam USING 'svc' OR ed25519 AS 'second-secret'", ['second-secret'], []],
  ["CREATE USER 'a'@'%' IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$sha2-hash-secret'", ['sha2-hash-secret'], ["IDENTIFIED WITH 'caching_sha2_password' AS"]],
  ['CREATE USER a IDENTIFIED WITH caching_sha2_password BY "mysql8-secret"', ['mysql8-secret'], []],
  ["SELECT PASSWORD('fn-secret')", ['fn-secret'], [`PASSWORD('${REDACTED}')`]],
  ["SELECT old_password ( 'old-fn-secret' )", ['old-fn-secret'], []],
  ["SET PASSWORD FOR 'u'@'%' = PASSWORD('set-pw-secret')", ['set-pw-secret'], ["SET PASSWORD FOR 'u'@'%' ="]],
  ["SET PASSWORD = 'set-plain-secret'", ['set-plain-secret'], []],
  ['SET PASSWORD FOR u@localhost = "set-dq-secret"', ['set-dq-secret'], []],
  ["CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_USER='repl', MASTER_PASSWORD='cm-secret', MASTER_PORT=3306", ['cm-secret'], ["MASTER_HOST='127.0.0.1'", 'MASTER_PORT=3306']],
  ["CHANGE REPLICATION SOURCE TO SOURCE_PASSWORD = \"src-secret\"", ['src-secret'], []],
  ["CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD 'federated-secret')", ['federated-secret'], []],
  // A syntax error quotes the statement near the error, its quotes unescaped.
  ["You have an error in your SQL syntax; check the manual near 'IDENTIFIED BY 'near-secret'' at line 1", ['near-secret'], ['You have an error in your SQL syntax']],
  ["... near 'MASTER_PASSWORD='near-cm-secret', MASTER_PORT=1' at line 1", ['near-cm-secret'], []],
  // Nothing to redact: left exactly as it was.
  ["the master no longer has the binary logs this backup needs (error 1236: Could not find GTID state requested by slave in any binlog files)", [], []],
  ["Access denied for user 'repl'@'127.0.0.1' (using password: YES)", [], []],
];

describe('redactSecrets', () => {
  for (const [input, secrets, kept] of CASES) {
    it(`redacts ${input.slice(0, 70)}`, () => {
      const out = redactSecrets(input);
      for (const s of secrets) assert.ok(!out.includes(s), `${JSON.stringify(s)} remains in ${JSON.stringify(out)}`);
      for (const k of kept) assert.ok(out.includes(k), `${JSON.stringify(k)} is kept in ${JSON.stringify(out)}`);
      if (secrets.length === 0) assert.equal(out, input);
      assert.equal(redactSecrets(out), out, 'redacting twice changes nothing');
    });
  }

  it('names the statement kind only', () => {
    assert.equal(statementKind("ALTER USER 'u'@'%' IDENTIFIED BY 'x'"), 'ALTER USER');
    assert.equal(statementKind('  /* hint */ insert into t values (1)'), 'INSERT INTO');
    assert.equal(statementKind("UPDATE secrets SET v='x'"), 'UPDATE');
    assert.equal(statementKind("GRANT ALL ON *.* TO 'u'"), 'GRANT');
    assert.equal(statementKind(''), 'statement');
  });

  it('redacts a report: its message and error message, nothing else', () => {
    const e = { phase: 'failed', status: 'failed', message: "SET PASSWORD = 'm-secret'", error: { code: 'AG_X', message: "IDENTIFIED BY 'e-secret'" } } as const;
    const r = redactEvent(e);
    assert.equal(r.phase, 'failed');
    assert.equal(r.error.code, 'AG_X');
    assert.ok(!JSON.stringify(r).includes('secret'), JSON.stringify(r));
    assert.deepEqual(redactEvent({ phase: 'done' }), { phase: 'done' });
  });
});

describe('redactLogArguments', () => {
  it('redacts the message, string fields, nested ones and errors of a log call', () => {
    const err = Object.assign(new Error("near 'IDENTIFIED BY 'log-secret-1'' at line 1"), { code: 'ER_PARSE_ERROR' });
    const out = redactLogArguments([{ phase: 'seed', err, error: { code: 'X', message: "SET PASSWORD = 'log-secret-2'" }, n: 3 }, "CHANGE MASTER TO MASTER_PASSWORD='log-secret-3'"]);
    const text = JSON.stringify(out);
    for (const s of ['log-secret-1', 'log-secret-2', 'log-secret-3']) assert.ok(!text.includes(s), text);
    assert.match(text, /ER_PARSE_ERROR/);
    assert.equal((out[0] as { n: number }).n, 3);
  });
});
