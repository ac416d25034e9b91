#!/usr/bin/env bash
# Installs Debian's OpenLDAP server and tools when slapd is missing (sourced by demo.sh and
# test.sh; PeopleSync runs private slapd instances, it never touches a system one).
if [[ ! -x /usr/sbin/slapd ]]; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing slapd and ldap-utils" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null
  else
    echo "slapd is missing: apt-get install slapd ldap-utils" >&2
    exit 1
  fi
fi
