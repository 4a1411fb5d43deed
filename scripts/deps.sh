#!/usr/bin/env bash
# Installs the Debian packages the integration tests use, when missing.
set -euo pipefail
need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v rsync >/dev/null || need+=(rsync)
command -v restic >/dev/null || need+=(restic)
command -v diff >/dev/null || need+=(diffutils)
# POSIX tools the integration tests drive on the mount.
command -v getfattr >/dev/null || need+=(attr)
command -v borg >/dev/null || need+=(borgbackup)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v git >/dev/null || need+=(git)
command -v setpriv >/dev/null || need+=(util-linux)
# cipher's independent decoder runs on Debian's interpreter and packages
# (python3 on PATH may be another build without them).
/usr/bin/python3 -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography)
/usr/bin/python3 -c 'import argon2' 2>/dev/null || need+=(python3-argon2)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
