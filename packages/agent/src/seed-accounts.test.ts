import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isAccountMismatch } from './phases/catch-up.js';
import { accountsDumpArgs, splitAccountsDump, statementAccount } from './seed-accounts.js';

// `mariadb-dump --system=users --skip-dump-date --skip-comments` of a 10.11.19 master (abridged: the
// session SET lines of the header and footer), with a role, a table grant and a routine grant.
const DUMP = `/*M!999999\\- enable the sandbox mode */ 
/*!40101 SET NAMES utf8mb4 */;
CREATE USER \`mariadb.sys\`@\`localhost\` ACCOUNT LOCK PASSWORD EXPIRE;
CREATE USER \`root\`@\`localhost\` IDENTIFIED VIA mysql_native_password USING 'invalid' OR unix_socket;
CREATE USER \`app\`@\`%\` IDENTIFIED BY PASSWORD '*DB14CBAE92D7CB2F84BD3AA7222415B564A4054A';
SELECT COALESCE(CURRENT_ROLE(),'NONE') into @current_role;
CREATE ROLE IF NOT EXISTS mariadb_dump_import_role;
GRANT mariadb_dump_import_role TO CURRENT_USER();
SET ROLE mariadb_dump_import_role;
/*!80001 CREATE ROLE 'reader' */;
/*M!100005 CREATE ROLE 'reader' WITH ADMIN mariadb_dump_import_role */;
/*M!100005 GRANT 'reader' TO 'root'@'localhost' WITH ADMIN OPTION */;
GRANT USAGE ON *.* TO \`mariadb.sys\`@\`localhost\`;
GRANT SELECT, DELETE ON \`mysql\`.\`global_priv\` TO \`mariadb.sys\`@\`localhost\`;
/*M!100005 SET DEFAULT ROLE NONE FOR 'mariadb.sys'@'localhost' */;
/*!80001 ALTER USER 'mariadb.sys'@'localhost' DEFAULT ROLE NONE */;
GRANT \`reader\` TO \`root\`@\`localhost\` WITH ADMIN OPTION;
GRANT ALL PRIVILEGES ON *.* TO \`root\`@\`localhost\` IDENTIFIED VIA mysql_native_password USING 'invalid' OR unix_socket WITH GRANT OPTION;
GRANT PROXY ON \`\`@\`%\` TO \`root\`@\`localhost\` WITH GRANT OPTION;
/*M!100005 SET DEFAULT ROLE NONE FOR 'root'@'localhost' */;
GRANT \`reader\` TO \`app\`@\`%\`;
GRANT USAGE ON *.* TO \`app\`@\`%\` IDENTIFIED BY PASSWORD '*DB14CBAE92D7CB2F84BD3AA7222415B564A4054A';
GRANT SELECT, INSERT ON \`shop\`.* TO \`app\`@\`%\`;
GRANT SELECT (\`id\`), UPDATE (\`total\`) ON \`shop\`.\`orders\` TO \`app\`@\`%\`;
GRANT EXECUTE ON PROCEDURE \`shop\`.\`add_order\` TO \`app\`@\`%\`;
/*M!100005 SET DEFAULT ROLE 'reader' FOR 'app'@'%' */;
GRANT USAGE ON *.* TO \`reader\`;
GRANT SELECT ON \`shop\`.\`orders\` TO \`reader\`;
SET ROLE NONE;
DROP ROLE mariadb_dump_import_role;
/*M!100203 EXECUTE IMMEDIATE CONCAT('SET ROLE ', @current_role) */;
`;

it('names the account a dump statement is about', () => {
  assert.equal(statementAccount('CREATE USER `app`@`%` IDENTIFIED BY PASSWORD \'*00\';'), 'app@%');
  assert.equal(statementAccount('GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION;'), 'root@localhost');
  assert.equal(statementAccount("/*M!100005 SET DEFAULT ROLE 'reader' FOR 'app'@'%' */;"), 'app@%');
  assert.equal(statementAccount("/*M!100005 GRANT 'reader' TO 'root'@'localhost' WITH ADMIN OPTION */;"), 'root@localhost');
  assert.equal(statementAccount('CREATE USER `o``dd`@`h` ACCOUNT LOCK;'), 'o`dd@h');
  assert.equal(statementAccount('GRANT USAGE ON *.* TO `reader`;'), undefined, 'a role has no host');
  assert.equal(statementAccount('SET ROLE NONE;'), undefined);
});

it("leaves out the local server's own accounts and defers the grants on tables and routines", () => {
  const { early, deferred, skipped } = splitAccountsDump(DUMP, new Set(['root@localhost', 'mariadb.sys@localhost']));
  assert.deepEqual(skipped, ['mariadb.sys@localhost', 'root@localhost']);
  assert.doesNotMatch(early + deferred, /root|mariadb\.sys/);
  assert.match(early, /^CREATE USER `app`@`%` IDENTIFIED BY PASSWORD '\*DB14/m);
  assert.match(early, /^\/\*M!100005 CREATE ROLE 'reader' WITH ADMIN mariadb_dump_import_role \*\/;$/m);
  assert.match(early, /^GRANT SELECT, INSERT ON `shop`\.\* TO `app`@`%`;$/m);
  assert.match(early, /^\/\*M!100005 SET DEFAULT ROLE 'reader' FOR 'app'@'%' \*\/;$/m);
  assert.match(early, /DROP ROLE mariadb_dump_import_role;\n/);
  assert.equal(
    deferred,
    ['GRANT SELECT (`id`), UPDATE (`total`) ON `shop`.`orders` TO `app`@`%`;', 'GRANT EXECUTE ON PROCEDURE `shop`.`add_order` TO `app`@`%`;', 'GRANT SELECT ON `shop`.`orders` TO `reader`;', ''].join('\n'),
  );
  // Accounts come before the grants that name them, in the dump's order.
  assert.ok(early.indexOf('CREATE USER `app`') < early.indexOf('GRANT `reader` TO `app`'));
});

it('refuses a dump whose statements are not one per line', () => {
  assert.throws(() => splitAccountsDump('CREATE USER `a`@`%`\n  IDENTIFIED BY PASSWORD \'*00\';\n', new Set()), /not one statement/);
});

it('dumps accounts as statements, without the date (two dumps of unchanged accounts compare equal)', () => {
  assert.deepEqual(accountsDumpArgs({ host: '127.0.0.1', port: 3306, user: 'understudy_repl' }), ['--no-defaults', '--host=127.0.0.1', '--port=3306', '--protocol=TCP', '--user=understudy_repl', '--system=users', '--skip-dump-date', '--skip-comments']);
});

it('reads 1396 and 1133 during catch-up as an account the backup lacks', () => {
  assert.equal(isAccountMismatch(1396), true);
  assert.equal(isAccountMismatch(1133), true);
  assert.equal(isAccountMismatch(1062), false);
  assert.equal(isAccountMismatch(0), false);
});
