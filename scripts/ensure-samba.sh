#!/usr/bin/env bash
# Installs Debian's Samba AD DC packages when samba-tool is missing (sourced by test.sh; the
# tests provision a private domain in a temporary directory, they never touch a system one).
# samba-ad-provision holds the schema files provisioning needs.
if [[ ! -x /usr/bin/samba-tool || ! -x /usr/sbin/samba ]]; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing the Samba AD DC packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      samba samba-ad-dc samba-ad-provision winbind krb5-user ldb-tools >/dev/null
  else
    echo "Samba is missing: apt-get install samba samba-ad-dc samba-ad-provision winbind krb5-user ldb-tools" >&2
    exit 1
  fi
fi
