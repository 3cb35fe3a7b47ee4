#!/usr/bin/env bash
# setup.sh - the Debian packages the tests run, installed when missing; `npm test` calls it first
# (the storage lab's own packages are storage-up.sh's, which runs next). Quick when everything is
# there: one dpkg-query, no apt. As root it installs what is missing (apt-get update only then);
# anyone else is told which packages are missing and the command that installs them.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
  postgresql     # the PostgreSQL example scripts' round trip (initdb, postgres, pg_dump, psql)
  mariadb-server # the MariaDB example scripts' round trip (mariadbd, mariadb-install-db)
  mariadb-client # mariadb, mariadb-dump
  redis-server   # the Redis example scripts' round trip
  redis-tools    # redis-cli
  chromium       # the screenshot of /docs (playwright-core drives Debian's browser)
  awscli         # the decrypt test downloads a streamed backup as an operator would (aws s3 cp)
  openssl        # test certificates, the example scripts' encryption
  python3        # request forgers, secret renderings, the store test's EIO shutdown
  e2fsprogs      # mkfs.ext4: the store test fills a loop-mounted ext4
  jq             # secret renderings (jq @base64)
  xxd            # secret renderings (xxd -p)
  git            # the newcomer test copies the repository's files (git ls-files)
  util-linux     # setpriv (PostgreSQL refuses root), setsid
  mount          # mount, umount: the store test's loop device
  gzip           # the example scripts' compression
  gcc            # the compiled script helper (tools/build-native.sh)
  libc6-dev      # its C library headers
)

say() { printf '[setup] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

command -v dpkg-query >/dev/null || die "the tests need Debian (dpkg-query is missing); install by hand: ${PACKAGES[*]}"

# one dpkg-query for all; a package Debian does not know yet (no lists) is simply not listed
status=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
missing=()
for p in "${PACKAGES[@]}"; do
  grep -qxF "$p installed" <<<"$status" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) != 0 ]]; then
  say "the tests need Debian packages that are missing: ${missing[*]}"
  say "install them as root:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  say "(or run npm test as root once: it installs them itself)"
  exit 1
fi

say "installing: ${missing[*]}"
T0=$SECONDS
APTLOG=${TMPDIR:-/tmp}/osb-test-setup-apt.log
# no init system: keep maintainer scripts from starting the database servers (the tests start
# their own on free ports); add a policy only where the machine has none
own_policy=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1
fi
rc=0
apt=(apt-get -q -o DPkg::Lock::Timeout=600)
{ "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; } >"$APTLOG" 2>&1 || rc=$?
((own_policy)) && rm -f /usr/sbin/policy-rc.d
((rc == 0)) || { tail -n 30 "$APTLOG" >&2; die "apt-get failed (log: $APTLOG)"; }
say "installed in $((SECONDS - T0)) s"
