#!/bin/sh
# drydock/swarm-node entrypoint: SSH host keys for this container, root's authorized keys, sshd, then dockerd.
#   SSH_AUTHORIZED_KEYS  public key line(s) allowed to log in as root (required unless
#                        /root/.ssh/authorized_keys is mounted)
# Arguments are dockerd's (CMD: --storage-driver=overlay2).
set -eu

fail() {
    echo "docker-entrypoint.sh: error: $*" >&2
    exit 1
}

ssh-keygen -A
install -d -m 0700 /root/.ssh
if [ -n "${SSH_AUTHORIZED_KEYS:-}" ]; then
    printf '%s\n' "$SSH_AUTHORIZED_KEYS" >/root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys
fi
[ -s /root/.ssh/authorized_keys ] ||
    fail "no key may log in: set SSH_AUTHORIZED_KEYS to a public key (or mount /root/.ssh/authorized_keys)"
install -d -m 0755 /run/sshd
/usr/sbin/sshd -t || fail "the sshd configuration is invalid"
# In the foreground of a background job: its log goes to the container's stderr, beside dockerd's.
/usr/sbin/sshd -D -e &
# A start after an abrupt stop (the container killed) finds the killed engine's runtime state, which a real
# machine's reboot would have cleared with /run: dockerd refuses to start over a stale pid file.
rm -rf /run/docker /run/docker.pid /run/containerd
echo "docker-entrypoint.sh: sshd on 22 (key-only root login); starting dockerd $*"
exec dockerd "$@"
