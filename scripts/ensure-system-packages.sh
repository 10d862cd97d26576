#!/usr/bin/env bash
# Makes sure the Debian packages behind the real servers that tests, the demo and benchmarks run
# are installed: MariaDB, OpenSSH, Ceph (mon, osd, radosgw), Prometheus, Chromium, debootstrap and systemd (systemd-analyze) for `test`; also restic, rclone and
# sysbench for `bench`. Installs only what is missing (apt-get update once, then one install).
#   scripts/ensure-system-packages.sh test|bench
set -euo pipefail

usage() { echo "usage: $0 test|bench" >&2; exit 2; }
[ $# -eq 1 ] || usage

test_pkgs=(mariadb-server openssh-server radosgw ceph-mon ceph-osd ceph-common prometheus chromium debootstrap systemd)
case "$1" in
  test) pkgs=("${test_pkgs[@]}") ;;
  bench) pkgs=("${test_pkgs[@]}" restic rclone sysbench) ;;
  *) usage ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == *"install ok installed"* ]] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages ($1): all ${#pkgs[@]} present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing Debian packages: ${missing[*]}" >&2
  echo "install them as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages ($1): installed ${missing[*]}"
