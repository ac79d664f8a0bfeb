#!/bin/sh
# mkcerts.sh — a throwaway lab PKI for tests and the demo. Never use these files in production.
#
# Usage: deploy/mkcerts.sh [--ca OTHER] [--eku EKU] [--san SANS] DIR [NAME...]
#
#   DIR/ca.pem, DIR/ca.key          lab CA (EC P-256, 10 years), created if absent
#   DIR/NAME.pem, DIR/NAME.key      for each NAME: leaf certificate signed by the CA, with
#                                   subjectAltName DNS:NAME and EKU serverAuth+clientAuth
#
# Options (they may appear anywhere on the command line):
#   --ca OTHER      use a second, independent CA instead: DIR/OTHER-ca.pem + DIR/OTHER-ca.key,
#                   and name the leaves DIR/OTHER-NAME.pem + DIR/OTHER-NAME.key (for tests of
#                   an untrusted peer).
#   --eku EKU       extendedKeyUsage of the leaves, e.g. "serverAuth" (default
#                   "serverAuth,clientAuth").
#   --san SANS      subjectAltName of the leaves instead of DNS:NAME, e.g. "DNS:a,DNS:b".
#
# Idempotent: existing files are kept, never overwritten, so a second run with other options
# does not change a certificate that already exists (use another DIR or NAME for another
# profile). Files appear atomically (written to a temporary name, then renamed); keys are 0600;
# concurrent runs on one DIR are serialised with flock(1) when it is available.
# Needs the openssl command-line tool.
set -eu

usage() {
	echo "usage: $0 [--ca OTHER] [--eku EKU] [--san SANS] DIR [NAME...]" >&2
	exit 2
}

ca_name=""
eku="serverAuth,clientAuth"
san=""
dir=""
names=""
while [ $# -gt 0 ]; do
	case "$1" in
	--ca) [ $# -ge 2 ] || usage; ca_name="$2"; shift 2 ;;
	--eku) [ $# -ge 2 ] || usage; eku="$2"; shift 2 ;;
	--san) [ $# -ge 2 ] || usage; san="$2"; shift 2 ;;
	-h | --help) usage ;;
	-*) echo "$0: unknown option $1" >&2; usage ;;
	*)
		if [ -z "$dir" ]; then
			dir="$1"
		else
			names="$names $1"
		fi
		shift
		;;
	esac
done
[ -n "$dir" ] || usage

mkdir -p "$dir"
umask 077

if [ -n "$ca_name" ]; then
	ca_base="$dir/$ca_name-ca"
	leaf_prefix="$ca_name-"
	ca_cn="Parley lab CA ($ca_name)"
else
	ca_base="$dir/ca"
	leaf_prefix=""
	ca_cn="Parley lab CA"
fi

# Concurrent runs on one DIR (parallel tests) must not mint two CAs: serialise them.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$dir/.mkcerts.lock"
	flock 9
fi

work=$(mktemp -d "$dir/.mkcerts.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# A private config keeps the system openssl.cnf (and its default extensions) out of the way.
cat >"$work/req.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
EOF

if [ ! -f "$ca_base.pem" ] || [ ! -f "$ca_base.key" ]; then
	cat >"$work/ca.ext" <<EOF
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key" 2>/dev/null
	openssl req -new -config "$work/req.cnf" -key "$work/ca.key" -subj "/CN=$ca_cn" \
		-out "$work/ca.csr"
	openssl x509 -req -in "$work/ca.csr" -signkey "$work/ca.key" -days 3650 -sha256 \
		-set_serial "0x$(openssl rand -hex 16)" -extfile "$work/ca.ext" \
		-out "$work/ca.pem" 2>/dev/null
	chmod 644 "$work/ca.pem"
	mv -f "$work/ca.key" "$ca_base.key"
	mv -f "$work/ca.pem" "$ca_base.pem"
fi

for name in $names; do
	base="$dir/$leaf_prefix$name"
	[ -f "$base.pem" ] && [ -f "$base.key" ] && continue
	leaf_san="${san:-DNS:$name}"
	cat >"$work/leaf.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = $eku
subjectAltName = $leaf_san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/leaf.key" 2>/dev/null
	openssl req -new -config "$work/req.cnf" -key "$work/leaf.key" -subj "/CN=$name" \
		-out "$work/leaf.csr"
	openssl x509 -req -in "$work/leaf.csr" -CA "$ca_base.pem" -CAkey "$ca_base.key" \
		-days 825 -sha256 -set_serial "0x$(openssl rand -hex 16)" \
		-extfile "$work/leaf.ext" -out "$work/leaf.pem" 2>/dev/null
	chmod 644 "$work/leaf.pem"
	mv -f "$work/leaf.key" "$base.key"
	mv -f "$work/leaf.pem" "$base.pem"
done
