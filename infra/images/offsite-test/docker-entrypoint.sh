#!/bin/sh
# drydock/offsite-test entrypoint: `s3` runs moto's S3 server as `offsite`; `sftp` runs sshd for `offsite`.
#   SSH_AUTHORIZED_KEYS  (sftp) the public key line(s) allowed to log in as `offsite`
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
    fail "unknown role '$1' (s3 or sftp)"
    ;;
esac
