#!/usr/bin/env bash
# Makes a cluster CA and one certificate per node for RedCloud's internal TLS.
#
#   scripts/make-certs.sh DIR NODE...
#
# DIR/ca.pem, DIR/ca.key        the cluster CA (keep ca.key offline once done)
# DIR/NODE.pem, DIR/NODE.key    one node's certificate and key, for
#                               --tls-cert / --tls-key (with --tls-ca DIR/ca.pem)
#
# Every node certificate names `redcloud-node` (what nodes check, whatever
# address they dialled) plus NODE itself, and serves as both TLS server and
# client. Running it again keeps an existing CA and adds the nodes it lacks.
# Needs the `openssl` command (Debian package openssl).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 DIR NODE..." >&2
  exit 2
fi
dir=$1
shift
command -v openssl >/dev/null || { echo "make-certs: needs openssl (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -days 3650 -subj "/CN=RedCloud cluster CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
fi

for node in "$@"; do
  case $node in
    *[!A-Za-z0-9._-]*|'') echo "make-certs: bad node name '$node'" >&2; exit 2 ;;
  esac
  [ -f "$dir/$node.pem" ] && continue
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -subj "/CN=$node" -keyout "$dir/$node.key" -out "$dir/$node.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=DNS:redcloud-node,DNS:$node" > "$dir/$node.ext"
  openssl x509 -req -in "$dir/$node.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 825 -sha256 -extfile "$dir/$node.ext" -out "$dir/$node.pem" 2>/dev/null
  rm -f "$dir/$node.csr" "$dir/$node.ext"
done
chmod 644 "$dir"/*.pem
echo "certificates in $dir: ca.pem and $(printf '%s.pem ' "$@")"
