#!/bin/sh
# Reference recipe for drydock/base:trixie (the xtask automates exactly these steps).
# Usage: mkbase.sh [IMAGE] [MIRROR]   (run as root; needs debootstrap and docker)
set -eu
image=${1:-drydock/base:trixie}
mirror=${2:-http://deb.debian.org/debian}
rootfs=$(mktemp -d /tmp/drydock-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase trixie "$rootfs" "$mirror"

# apt sources: trixie + trixie-updates + trixie-security (plain http; apt verifies signatures).
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror trixie main
deb $mirror trixie-updates main
deb http://deb.debian.org/debian-security trixie-security main
SOURCES

# Like the official debian images: keep apt from caching .debs/pkgcache and from fetching translations.
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
cat >"$rootfs/etc/apt/apt.conf.d/docker-no-languages" <<'CONF'
Acquire::Languages "none";
CONF
# Like debian:*-slim: packages installed later do not bring docs, man pages or translations.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CONF

# Slim the rootfs: downloaded .debs, apt lists, docs (except copyright), man, info, translations,
# logs, and files Docker provides at run time.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
       "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
mkdir -p "$rootfs/var/lib/apt/lists/partial"
find "$rootfs/usr/share/doc" -mindepth 1 -type f ! -name copyright -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete

tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  - "$image"
