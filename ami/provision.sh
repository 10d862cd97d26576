#!/usr/bin/env bash
# The one provisioning script of the agent's image (see README.md beside it). Runs as root inside the
# image, on Debian 12: on the Packer build instance, or in a chroot (test/ami-provision.test.ts).
# Idempotent: running it again leaves the same image.
#
#   provision.sh BUNDLE_DIR UNIT_FILE
#     BUNDLE_DIR  `npm run bundle:agent`'s dist/agent-bundle (understudy-agent.mjs, node, ...)
#     UNIT_FILE   systemd/understudy-agent.service
#
#   APT_UPGRADE=yes (default)    upgrade the installed packages first (no: leave them as they are)
#   DB_FLAVOR=mariadb (default)  MariaDB 10.11 from Debian's own packages.
#   DB_FLAVOR=mysql              MySQL 8 from the MySQL APT repository (repo.mysql.com): Debian 12
#                                packages no MySQL 8. MYSQL_APT_COMPONENT picks the series
#                                (default mysql-8.4-lts; or mysql-8.0). Written but NOT tested: the
#                                project's machines reach no package repository but Debian's.
#
# What it leaves (each point is explained where it is done):
#   - the database server installed, its own units disabled (the agent starts its own server);
#   - an empty data directory /var/lib/mysql (the agent restores or initialises it itself);
#   - /etc/tmpfiles.d/understudy-agent.conf: the agent's run directory, writable by the server;
#   - the bundle in /opt/understudy-agent/ and /usr/bin/understudy-agent;
#   - understudy-agent.service installed and enabled (multi-user.target);
#   - apt's periodic timers disabled; apt caches and lists removed.
# It starts and stops no service (package scripts are kept from starting any with policy-rc.d), and
# it leaves cloud-init alone: the run document (JSON user-data) is read by the agent from IMDS.
set -euo pipefail

usage() {
  echo "usage: $0 BUNDLE_DIR UNIT_FILE   (as root, on Debian 12; DB_FLAVOR=mariadb|mysql)" >&2
  exit 2
}
say() { echo "provision: $*"; }
die() {
  echo "provision: error: $*" >&2
  exit 1
}

[ $# -eq 2 ] || usage
BUNDLE_DIR=$1
UNIT_FILE=$2
DB_FLAVOR=${DB_FLAVOR:-mariadb}
MYSQL_APT_COMPONENT=${MYSQL_APT_COMPONENT:-mysql-8.4-lts}

INSTALL_DIR=/opt/understudy-agent
BIN_LINK=/usr/bin/understudy-agent
UNIT_NAME=understudy-agent.service
DATADIR=/var/lib/mysql # the agent's default config.mysqld.datadir
RUN_DIR=/run/understudy # the agent's default config.mysqld.runDir
DB_USER=mysql           # the agent's default config.mysqld.user (the packages create it)
TMPFILES_CONF=/etc/tmpfiles.d/understudy-agent.conf
# MySQL Release Engineering's signing key (RPM-GPG-KEY-mysql-2023), pinned by fingerprint.
MYSQL_KEY_URL=https://repo.mysql.com/RPM-GPG-KEY-mysql-2023
MYSQL_KEY_FPR=BCA43417C3B485DD128EC6D4B7B3B788A8D3785C
MYSQL_KEYRING=/usr/share/keyrings/mysql-apt.asc
MYSQL_SOURCES=/etc/apt/sources.list.d/mysql.list

# --- checks --------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root"
# shellcheck source=/dev/null
. /etc/os-release
[ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ] || die "expected Debian 12 (bookworm), found ${PRETTY_NAME:-an unknown system}"
case "$DB_FLAVOR" in mariadb | mysql) ;; *) die "DB_FLAVOR must be mariadb or mysql, not '$DB_FLAVOR'" ;; esac
for f in understudy-agent.mjs codec-worker.js package.json zstd-napi.node crc32.node node VERSION; do
  [ -f "$BUNDLE_DIR/$f" ] || die "$BUNDLE_DIR/$f is missing: is $BUNDLE_DIR the output of \`npm run bundle:agent\`?"
done
[ -f "$UNIT_FILE" ] || die "$UNIT_FILE (the agent's unit) is missing"
VERSION=$(tr -d '[:space:]' <"$BUNDLE_DIR/VERSION")
say "agent $VERSION, database $DB_FLAVOR"

export DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# --- packages ------------------------------------------------------------------------------------
# Package scripts must start no service: not on the build instance (a server started there would
# run until the snapshot), not in a chroot. A policy-rc.d that forbids every start, ours only while
# this script runs; one that was there already (a chroot's) is left as it is.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# provision.sh: no service starts while the image is built\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  trap 'rm -f "$POLICY"' EXIT
fi

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
updated=no
apt_update() { # once (again after a source is added)
  if [ "$updated" = no ]; then
    apt-get update -qq
    updated=yes
  fi
}
apt_install() { # installs those of the packages that are missing
  local missing=() p
  for p in "$@"; do is_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  apt_update
  say "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
}

# The instances never update themselves (see apt below): the image takes Debian's updates when it
# is built. APT_UPGRADE=no skips that (the test's chroot, made from the current packages anyway).
if [ "${APT_UPGRADE:-yes}" = yes ]; then
  apt_update
  say "upgrading the installed packages"
  apt-get upgrade -y -qq -o Dpkg::Options::=--force-confold >/dev/null
fi

# systemd is in every Debian cloud image; listed so that a bare root (a chroot) gets systemctl too.
apt_install systemd

if [ "$DB_FLAVOR" = mariadb ]; then
  # mariadbd, mariadb-install-db (seeding), and through mariadb-client mariadb-dump and mariadb.
  apt_install mariadb-server
  SERVER_BIN=/usr/sbin/mariadbd
  TOOLS=(mariadb-install-db mariadb-dump mariadb)
  DB_UNITS=(mariadb.service mariadb.socket mariadb-extra.socket)
else
  apt_install ca-certificates curl gpg
  if [ ! -s "$MYSQL_KEYRING" ]; then
    key=$(mktemp)
    curl -fsSL --retry 3 -o "$key" "$MYSQL_KEY_URL"
    fpr=$(gpg --batch --show-keys --with-colons "$key" | awk -F: '$1 == "fpr" { print $10; exit }')
    [ "$fpr" = "$MYSQL_KEY_FPR" ] || die "the key at $MYSQL_KEY_URL has fingerprint '$fpr', expected $MYSQL_KEY_FPR"
    install -m 0644 "$key" "$MYSQL_KEYRING"
    rm -f "$key"
  fi
  want="deb [signed-by=$MYSQL_KEYRING] http://repo.mysql.com/apt/debian/ bookworm $MYSQL_APT_COMPONENT"
  if [ "$(cat "$MYSQL_SOURCES" 2>/dev/null)" != "$want" ]; then
    echo "$want" >"$MYSQL_SOURCES"
    updated=no # the new source needs an apt-get update
  fi
  # Non-interactive: the package's root-password questions answered (empty). The server the package
  # creates is deleted below anyway; the agent initialises its own.
  echo 'mysql-community-server mysql-community-server/root-pass password' | debconf-set-selections
  echo 'mysql-community-server mysql-community-server/re-root-pass password' | debconf-set-selections
  apt_install mysql-community-server mysql-community-client
  SERVER_BIN=/usr/sbin/mysqld
  TOOLS=(mysql mysqldump)
  DB_UNITS=(mysql.service mysqld.service)
  # MySQL's packages confine mysqld with AppArmor, which knows nothing of the agent's run directory.
  if [ -e /etc/apparmor.d/usr.sbin.mysqld ]; then
    mkdir -p /etc/apparmor.d/local
    printf '# provision.sh: the Understudy agent'"'"'s run directory (socket, pid, tmpdir, logs, relay logs)\n%s/ rw,\n%s/** rwk,\n' "$RUN_DIR" "$RUN_DIR" >/etc/apparmor.d/local/usr.sbin.mysqld
  fi
fi
[ -x "$SERVER_BIN" ] || die "$SERVER_BIN is missing after installing the $DB_FLAVOR server"
for t in "${TOOLS[@]}"; do command -v "$t" >/dev/null || die "$t is missing after installing the $DB_FLAVOR server"; done
getent passwd "$DB_USER" >/dev/null || die "the package created no '$DB_USER' user"

# --- the database server: not started at boot ----------------------------------------------------
# The agent runs its own server with its own config (--defaults-file in the run directory), and only
# after it has restored or seeded the data directory. Debian enables mariadb.service and
# mariadb.socket (which listens on port 3306 and /run/mysqld/mysqld.sock and would start the
# packaged server on the first connection): both are disabled. Not masked: `systemctl start mariadb`
# still works for someone debugging an instance by hand.
for u in "${DB_UNITS[@]}"; do
  for d in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
    # Real unit files only: aliases (mysql.service -> mariadb.service) go with their unit.
    if [ -f "$d/$u" ] && [ ! -L "$d/$u" ]; then
      systemctl disable --quiet "$u"
      break
    fi
  done
done

# --- the data directory: empty -------------------------------------------------------------------
# The package's postinst created a server in /var/lib/mysql (system tables, a 96 MB redo log,
# ~110 MB). The agent never uses it: restoring a backup replaces the directory's contents (restore
# with force), and seeding empties it before mariadb-install-db. Kept, it would only make every
# volume bigger and bake one server identity into every instance. The image holds the directory,
# empty, owned by the server's user.
install -d -o "$DB_USER" -g "$DB_USER" -m 0750 "$DATADIR"
find "$DATADIR" -mindepth 1 -delete

# --- name resolution -----------------------------------------------------------------------------
# mariadb-install-db (the agent's first run) refuses to run when neither the host name nor
# 'localhost' resolves. Every Debian cloud image has /etc/hosts; a bare root (a chroot) may not.
if ! grep -Eq '^[[:space:]]*127\.0\.0\.1[[:space:]].*\blocalhost\b' /etc/hosts 2>/dev/null; then
  echo '127.0.0.1 localhost' >>/etc/hosts
fi

# --- the run directory ---------------------------------------------------------------------------
# The agent puts the server's socket, pid file, tmpdir, error log and relay logs in /run/understudy.
# The agent runs as root, the server as mysql: a directory the agent made would be root's, and the
# server could create nothing in it. systemd-tmpfiles makes both at boot, before the agent starts
# (/run is a tmpfs: nothing made there now would survive).
cat >"$TMPFILES_CONF" <<EOF
# provision.sh: the Understudy agent's run directory (config.mysqld.runDir), the server's tmpdir in it.
# Owned by the user the agent runs the server as (config.mysqld.user, default $DB_USER).
d $RUN_DIR 0750 $DB_USER $DB_USER -
d $RUN_DIR/tmp 0750 $DB_USER $DB_USER -
EOF
chmod 0644 "$TMPFILES_CONF"

# --- the agent -----------------------------------------------------------------------------------
# Replaced whole (a new directory, then swapped in), so a file dropped from the bundle does not linger.
rm -rf "$INSTALL_DIR.new"
mkdir -p "$INSTALL_DIR.new"
cp -R "$BUNDLE_DIR/." "$INSTALL_DIR.new/"
chown -R root:root "$INSTALL_DIR.new"
chmod -R u=rwX,go=rX "$INSTALL_DIR.new"
chmod 0755 "$INSTALL_DIR.new/node"
cat >"$INSTALL_DIR.new/understudy-agent" <<EOF
#!/bin/sh
# The Understudy agent $VERSION, with the Node runtime bundled beside it (see README.md in ami/).
export UV_THREADPOOL_SIZE="\${UV_THREADPOOL_SIZE:-8}"
exec $INSTALL_DIR/node --max-semi-space-size=2 $INSTALL_DIR/understudy-agent.mjs "\$@"
EOF
chmod 0755 "$INSTALL_DIR.new/understudy-agent"
rm -rf "$INSTALL_DIR"
mv "$INSTALL_DIR.new" "$INSTALL_DIR"
ln -sfn "$INSTALL_DIR/understudy-agent" "$BIN_LINK"
printed=$("$BIN_LINK" --version) || die "$BIN_LINK --version failed"
[ "$printed" = "understudy-agent $VERSION" ] || die "$BIN_LINK --version printed '$printed', expected 'understudy-agent $VERSION'"

# --- the unit ------------------------------------------------------------------------------------
install -m 0644 "$UNIT_FILE" "/etc/systemd/system/$UNIT_NAME"
# In a chroot (no systemd running) systemctl works offline on the files; on a booted build
# instance the manager must reload first.
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
systemctl enable --quiet "$UNIT_NAME"
[ "$(systemctl is-enabled "$UNIT_NAME")" = enabled ] || die "$UNIT_NAME is not enabled"

# --- apt ----------------------------------------------------------------------------------------
# The instance lives for one backup and the image is rebuilt to take updates: apt's daily timers
# would only compete with the backup for disk and network, and unattended-upgrades could replace
# the server binaries under the agent's running server.
for t in apt-daily.timer apt-daily-upgrade.timer; do
  if [ -f "/lib/systemd/system/$t" ] || [ -f "/usr/lib/systemd/system/$t" ]; then systemctl disable --quiet "$t"; fi
done
apt-get clean
rm -rf /var/lib/apt/lists/*

say "done: $BIN_LINK ($VERSION), $UNIT_NAME enabled, $DB_FLAVOR server installed and disabled, $DATADIR empty"
