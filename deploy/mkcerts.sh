#!/bin/sh
# mkcerts.sh — a throwaway lab PKI for tests, the demo and the lab. Never use these files in
# production: a public deployment gets its edge certificate from a public CA (docs/OPERATIONS.md).
#
# Usage: deploy/mkcerts.sh [--ca OTHER] [--eku EKU] [--san SANS] [--days N] [--renew] DIR [NAME...]
#        deploy/mkcerts.sh --kit [--domain D]... [--edge-host H] [--link-edge N]
#                          [--link-gateway N] [--sip-host N] [--edge-eku EKU] [--days N]
#                          [--renew] DIR
#
# Plain mode (what the tests use):
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
#   --days N        validity of new leaves in days (default 825).
#   --renew         issue the leaves again even if they exist (the CA is kept): the new files
#                   replace the old ones atomically, so a daemon reloading on SIGHUP never
#                   reads half a file.
#
# Kit mode (--kit): the certificate set of one deployment, with the file names the sample
# configs in deploy/conf use:
#   DIR/ca.pem, ca.key              the lab CA (as above)
#   DIR/edge.pem, edge.key          the edge's external (XMPP S2S) certificate: CN the first
#                                   --domain, subjectAltName DNS: every --domain (default
#                                   corp.test) and the --edge-host (default edge.<first domain>);
#                                   EKU --edge-eku (default serverAuth,clientAuth: the edge is a
#                                   TLS server for inbound streams and a TLS client, offering
#                                   SASL EXTERNAL, for outbound ones)
#   DIR/link-edge.pem, .key         the edge's link certificate: DNS:--link-edge (default
#                                   proxy.link.<first domain>), EKU serverAuth (it listens)
#   DIR/link-gateway.pem, .key      the gateway's link certificate: DNS:--link-gateway (default
#                                   gateway.link.<first domain>), EKU clientAuth (it dials)
#   DIR/sip.pem, sip.key            the gateway's SIP certificate: DNS:--sip-host (default
#                                   gw.<first domain>), EKU serverAuth,clientAuth (the pool
#                                   connects to it, and it presents it to the pool)
#   DIR/kit.txt                     what was issued: file, subject, SANs, EKU, expiry
#
# Idempotent: existing files are kept, never overwritten (unless --renew), so a second run with
# other options does not change a certificate that already exists (use another DIR or NAME for
# another profile). Files appear atomically (written to a temporary name, then renamed); keys
# are 0600; concurrent runs on one DIR are serialised with flock(1) when it is available.
# Needs the openssl command-line tool.
set -eu

usage() {
	echo "usage: $0 [--ca OTHER] [--eku EKU] [--san SANS] [--days N] [--renew] DIR [NAME...]" >&2
	echo "       $0 --kit [--domain D]... [--edge-host H] [--link-edge N] [--link-gateway N]" >&2
	echo "                [--sip-host N] [--edge-eku EKU] [--days N] [--renew] DIR" >&2
	exit 2
}

ca_name=""
eku="serverAuth,clientAuth"
san=""
dir=""
names=""
days=825
renew=0
kit=0
domains=""
edge_host=""
link_edge=""
link_gateway=""
sip_host=""
edge_eku="serverAuth,clientAuth"
while [ $# -gt 0 ]; do
	case "$1" in
	--ca) [ $# -ge 2 ] || usage; ca_name="$2"; shift 2 ;;
	--eku) [ $# -ge 2 ] || usage; eku="$2"; shift 2 ;;
	--san) [ $# -ge 2 ] || usage; san="$2"; shift 2 ;;
	--days) [ $# -ge 2 ] || usage; days="$2"; shift 2 ;;
	--renew) renew=1; shift ;;
	--kit) kit=1; shift ;;
	--domain) [ $# -ge 2 ] || usage; domains="$domains $2"; shift 2 ;;
	--edge-host) [ $# -ge 2 ] || usage; edge_host="$2"; shift 2 ;;
	--link-edge) [ $# -ge 2 ] || usage; link_edge="$2"; shift 2 ;;
	--link-gateway) [ $# -ge 2 ] || usage; link_gateway="$2"; shift 2 ;;
	--sip-host) [ $# -ge 2 ] || usage; sip_host="$2"; shift 2 ;;
	--edge-eku) [ $# -ge 2 ] || usage; edge_eku="$2"; shift 2 ;;
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
case "$days" in '' | *[!0-9]*) echo "$0: --days wants a number of days" >&2; usage ;; esac
if [ "$kit" -eq 1 ] && { [ -n "$names" ] || [ -n "$ca_name" ] || [ -n "$san" ]; }; then
	echo "$0: --kit takes only DIR (and the kit options)" >&2
	usage
fi

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

# issue BASE CN SAN EKU: BASE.pem + BASE.key signed by the CA, unless both exist (and no
# --renew). The key is renewed with the certificate: a leaked old key dies with it.
issue() {
	base="$1"
	[ "$renew" -eq 0 ] && [ -f "$base.pem" ] && [ -f "$base.key" ] && return 0
	cat >"$work/leaf.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = $4
subjectAltName = $3
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/leaf.key" 2>/dev/null
	openssl req -new -config "$work/req.cnf" -key "$work/leaf.key" -subj "/CN=$2" \
		-out "$work/leaf.csr"
	openssl x509 -req -in "$work/leaf.csr" -CA "$ca_base.pem" -CAkey "$ca_base.key" \
		-days "$days" -sha256 -set_serial "0x$(openssl rand -hex 16)" \
		-extfile "$work/leaf.ext" -out "$work/leaf.pem" 2>/dev/null
	chmod 644 "$work/leaf.pem"
	# Key first: a reader that finds the new certificate also finds its key. (A reload
	# between the two renames sees a key that does not match and is refused; the daemon
	# keeps its old credentials, and the next SIGHUP succeeds.)
	mv -f "$work/leaf.key" "$base.key"
	mv -f "$work/leaf.pem" "$base.pem"
}

if [ "$kit" -eq 0 ]; then
	for name in $names; do
		issue "$dir/$leaf_prefix$name" "$name" "${san:-DNS:$name}" "$eku"
	done
	exit 0
fi

[ -n "$domains" ] || domains="corp.test"
first=""
edge_san=""
for d in $domains; do
	[ -n "$first" ] || first="$d"
	edge_san="${edge_san:+$edge_san,}DNS:$d"
done
edge_host="${edge_host:-edge.$first}"
link_edge="${link_edge:-proxy.link.$first}"
link_gateway="${link_gateway:-gateway.link.$first}"
sip_host="${sip_host:-gw.$first}"
case ",$edge_san," in *",DNS:$edge_host,"*) ;; *) edge_san="$edge_san,DNS:$edge_host" ;; esac

issue "$dir/edge" "$first" "$edge_san" "$edge_eku"
issue "$dir/link-edge" "$link_edge" "DNS:$link_edge" "serverAuth"
issue "$dir/link-gateway" "$link_gateway" "DNS:$link_gateway" "clientAuth"
issue "$dir/sip" "$sip_host" "DNS:$sip_host" "serverAuth,clientAuth"

# A readable inventory of the kit, as the files on disk now are.
for f in ca edge link-edge link-gateway sip; do
	echo "$f.pem:"
	openssl x509 -in "$dir/$f.pem" -noout -subject -enddate \
		-ext subjectAltName,extendedKeyUsage 2>/dev/null | sed 's/^/    /'
done >"$work/kit.txt"
chmod 644 "$work/kit.txt"
mv -f "$work/kit.txt" "$dir/kit.txt"
