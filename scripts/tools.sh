#!/usr/bin/env bash
# Builds the test servers once and caches them outside the checkout, keyed
# by version, so fresh clones on the same machine reuse them.
# Usage: scripts/tools.sh versitygw|weed|local-kms   -> prints the binary's path
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6
CACHE="${COFFER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/coffer-tools}"

build_versitygw() {
	local dir="$CACHE/versitygw-$VERSITYGW_VERSION"
	if [ ! -x "$dir/versitygw" ]; then
		mkdir -p "$dir"
		echo "building versitygw $VERSITYGW_VERSION (about 2 minutes, once)" >&2
		GOBIN="$dir.tmp" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
		mv "$dir.tmp/versitygw" "$dir/versitygw"
		rmdir "$dir.tmp"
	fi
	echo "$dir/versitygw"
}

build_weed() {
	local dir="$CACHE/seaweedfs-$SEAWEEDFS_VERSION"
	if [ ! -x "$dir/weed" ]; then
		local src="$dir.src"
		rm -rf "$src" && mkdir -p "$src"
		echo "building SeaweedFS $SEAWEEDFS_VERSION (about 10 minutes, once)" >&2
		cat >"$src/go.mod" <<MOD
module coffer-tools/weed

go 1.26

require github.com/seaweedfs/seaweedfs $SEAWEEDFS_VERSION

replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0
MOD
		cat >"$src/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
GO
		(cd "$src" && go mod tidy -e >&2 && go build -o "$dir/weed.tmp" github.com/seaweedfs/seaweedfs/weed >&2)
		mv "$dir/weed.tmp" "$dir/weed"
		rm -rf "$src"
	fi
	echo "$dir/weed"
}

# local-kms: the AWS KMS API (JSON protocol, SigV4) on loopback, keys in a
# data directory; the KMS root-key tests run against it.
build_local_kms() {
	local dir="$CACHE/local-kms-$LOCAL_KMS_VERSION"
	if [ ! -x "$dir/local-kms" ]; then
		mkdir -p "$dir"
		echo "building local-kms $LOCAL_KMS_VERSION (about a minute, once)" >&2
		rm -rf "$dir.tmp"
		GOBIN="$dir.tmp" go install "github.com/nsmithuk/local-kms@$LOCAL_KMS_VERSION" >&2
		mv "$dir.tmp/local-kms" "$dir/local-kms"
		rmdir "$dir.tmp"
	fi
	echo "$dir/local-kms"
}

case "${1:-}" in
versitygw) build_versitygw ;;
weed) build_weed ;;
local-kms) build_local_kms ;;
*) echo "usage: $0 versitygw|weed|local-kms" >&2; exit 2 ;;
esac
