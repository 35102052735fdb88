#!/usr/bin/env bash
# Make a test CA, a server certificate and one client certificate per account, with openssl.
#
#   make-test-ca.sh DIR HOST [ACCOUNT ...]
#
# DIR gets ca.crt/ca.key (the CA), server.crt/server.key (for HOST, and for localhost,
# 127.0.0.1 and ::1 too, so the same files serve a test broker on loopback) and ACCOUNT.crt/
# ACCOUNT.key for each account (the certificate's CN is the account name, e.g. central, watch,
# gw-nerima). Run again on the same DIR to add accounts: the CA is kept, and so is the server's
# certificate unless HOST changed; an account named again gets a new key and certificate.
#
# For tests, trials and a first install. A production CA's key belongs offline, not beside the
# broker: keep ca.key elsewhere once the certificates are made (docs/operations.md).
set -euo pipefail

usage() { echo "usage: $0 DIR HOST [ACCOUNT ...]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
dir=$1 host=$2
shift 2
[[ -n $host ]] || usage
# Account names become file names and certificate CNs: keep them to what Mosquitto user names
# in this project are (central, watch, gw-<office id>).
for account in "$@"; do
    [[ $account =~ ^[a-z0-9][a-z0-9-]{0,39}$ ]] || { echo "$0: bad account name '$account' (a-z, 0-9, -)" >&2; exit 2; }
    [[ $account != ca && $account != server ]] || { echo "$0: '$account' is reserved for the CA/server files" >&2; exit 2; }
done

mkdir -p "$dir"
umask 077   # keys readable by their owner only; certificates are made 0644 below
days_ca=3650 days_leaf=825
# EC P-256 keys: fast to make (tests make them on every run), and every client here speaks them.
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
ext=$(mktemp "$dir/.ext.XXXXXX")
trap 'rm -f "$ext" "$dir"/.csr.*' EXIT

if [[ ! -f $dir/ca.key || ! -f $dir/ca.crt ]]; then
    openssl req -x509 "${newkey[@]}" -keyout "$dir/ca.key" -out "$dir/ca.crt" -days "$days_ca" \
        -subj "/O=counterfloor test/CN=counterfloor test CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# sign NAME SUBJECT EXTENSIONS: a key and a certificate signed by the CA.
sign() {
    local name=$1 subject=$2 extensions=$3 csr
    csr=$(mktemp "$dir/.csr.XXXXXX")
    printf '%s\n' "$extensions" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" > "$ext"
    openssl req -new "${newkey[@]}" -keyout "$dir/$name.key" -out "$csr" -subj "$subject" 2>/dev/null
    openssl x509 -req -in "$csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days "$days_leaf" -sha256 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
    rm -f "$csr"
}

# A host given as an IP address goes into the SAN as one (clients match IPs only against IP SANs).
if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then host_san="IP:$host"; else host_san="DNS:$host"; fi
sans="$host_san"
for extra in DNS:localhost IP:127.0.0.1 IP:::1; do
    [[ $extra == "$host_san" ]] || sans+=",$extra"
done
server_cn=
if [[ -f $dir/server.crt && -f $dir/server.key ]]; then
    server_cn=$(openssl x509 -in "$dir/server.crt" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')
fi
if [[ $server_cn != "$host" ]]; then
    sign server "/O=counterfloor test/CN=$host" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth
subjectAltName=$sans"
fi

for account in "$@"; do
    sign "$account" "/O=counterfloor test/CN=$account" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=clientAuth"
done

chmod 0644 "$dir"/*.crt
rm -f "$dir/ca.srl"
made="ca.crt, server.crt (${sans//,/, })"
if [[ $server_cn == "$host" ]]; then made+=" kept"; fi
for account in "$@"; do made+=", $account.crt"; done
echo "$dir: $made"
