#!/bin/sh
# drydock/offsite-test entrypoint: `s3` runs moto's S3 server as `offsite` over HTTP, `s3-tls` the same over
# HTTPS only (pgBackRest talks to S3 over TLS only); `sftp` runs sshd for `offsite`.
#   SSH_AUTHORIZED_KEYS      (sftp) the public key line(s) allowed to log in as `offsite`
#   S3_TLS_CERT, S3_TLS_KEY  (s3-tls) PEM certificate and key files, readable by `offsite`
set -eu

fail() {
    echo "docker-entrypoint.sh: error: $*" >&2
    exit 1
}

case "${1:-s3}" in
s3)
    echo "docker-entrypoint.sh: S3 (moto) on 9000"
    exec setpriv --reuid=offsite --regid=offsite --init-groups python3 -m moto.server -H 0.0.0.0 -p 9000
    ;;
s3-tls)
    if [ -z "${S3_TLS_CERT:-}" ] || [ -z "${S3_TLS_KEY:-}" ]; then
        fail "set S3_TLS_CERT and S3_TLS_KEY to the server's PEM certificate and key files"
    fi
    # TLS is ended by socat in front of moto on loopback, not by moto's own (werkzeug) TLS: werkzeug closes
    # a connection without TLS close_notify, which pgBackRest's OpenSSL 3 reports as "unexpected eof while
    # reading" on every PUT. socat shuts TLS down properly, as real S3 endpoints do.
    echo "docker-entrypoint.sh: S3 (moto) on 9000, HTTPS only (socat in front of moto on 127.0.0.1:9001)"
    # The script's $1 and $2 are expanded by the inner shell (the arguments after it), not here.
    # shellcheck disable=SC2016
    exec setpriv --reuid=offsite --regid=offsite --init-groups sh -c '
        python3 -m moto.server -H 127.0.0.1 -p 9001 &
        exec socat "openssl-listen:9000,fork,reuseaddr,cert=$1,key=$2,verify=0" tcp:127.0.0.1:9001
    ' s3-tls "$S3_TLS_CERT" "$S3_TLS_KEY"
    ;;
sftp)
    [ -n "${SSH_AUTHORIZED_KEYS:-}" ] || fail "set SSH_AUTHORIZED_KEYS to the public key that may log in as offsite"
    ssh-keygen -A
    install -d -o offsite -g offsite -m 0700 /home/offsite/.ssh
    printf '%s\n' "$SSH_AUTHORIZED_KEYS" >/home/offsite/.ssh/authorized_keys
    chown offsite:offsite /home/offsite/.ssh/authorized_keys
    chmod 0600 /home/offsite/.ssh/authorized_keys
    install -d -m 0755 /run/sshd
    /usr/sbin/sshd -t || fail "the sshd configuration is invalid"
    echo "docker-entrypoint.sh: SFTP on 22 (user offsite, key only), files under /data"
    exec /usr/sbin/sshd -D -e
    ;;
*)
    fail "unknown role '$1' (s3, s3-tls or sftp)"
    ;;
esac
