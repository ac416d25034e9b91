#!/usr/bin/env bash
# Installs Debian's 389 Directory Server when dscreate is missing (sourced by test.sh; the tests
# create private instances named pstest<pid>n<k> without systemd and remove them afterwards).
if [[ ! -x /usr/sbin/dscreate || ! -x /usr/sbin/ns-slapd ]]; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing 389-ds-base" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends 389-ds-base >/dev/null
  else
    echo "389 Directory Server is missing: apt-get install 389-ds-base" >&2
    exit 1
  fi
fi
