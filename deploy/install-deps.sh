#!/usr/bin/env bash
# Installs Parley's build, test and demo prerequisites on Debian 12 when any is missing.
# Runs apt-get update once before the first install, and leaves no system
# Prosody/Kamailio/dnsmasq service running (the tests start their own on loopback).
set -euo pipefail

PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev llvm
  libexpat1-dev libssl-dev libuv1-dev libc-ares-dev
  libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libosip2-dev libinih-dev libsqlite3-dev libidn-dev libcmocka-dev libmicrohttpd-dev
  libmimalloc-dev
  python3 python3-pytest python3-protobuf python3-slixmpp
  prosody lua-unbound kamailio kamailio-presence-modules kamailio-tls-modules
  kamailio-sqlite-modules sip-tester dnsmasq-base iproute2 nftables openssl
  procps psmisc systemd
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or install them)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
# Keep package maintainer scripts from starting services: the tests run their own
# Prosody/Kamailio/dnsmasq on loopback and a system instance would take their ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

# If a service did start anyway (no policy-rc.d honoured), stop and disable it.
for svc in prosody kamailio dnsmasq; do
  if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files "$svc.service" >/dev/null 2>&1; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
  if [ -x "/etc/init.d/$svc" ]; then
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
done
