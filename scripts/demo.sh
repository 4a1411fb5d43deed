#!/usr/bin/env bash
# make demo: a local encrypted coffer volume under ./demo, mounted at
# ./demo/mnt in the foreground until Ctrl-C.
#
#   ./demo/key    the root key (0600): without it the store cannot be read
#   ./demo/store  the local object store: ciphertext under encrypted names
#   ./demo/cache  coffer's local cache and staging (sealed as well)
#   ./demo/mnt    the mountpoint: plain files for every program
set -euo pipefail
cd "$(dirname "$0")/.."
COFFER=${COFFER:-bin/coffer}
DEMO=$PWD/demo

if [ ! -x "$COFFER" ]; then
	echo "demo: $COFFER not found: run make demo (it builds coffer first)" >&2
	exit 1
fi
if [ ! -e /dev/fuse ]; then
	echo "demo: /dev/fuse is missing: load the fuse module (modprobe fuse) or run where FUSE is available" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ] && ! command -v fusermount3 >/dev/null; then
	echo "demo: fusermount3 is missing: run scripts/deps.sh (or sudo apt-get install fuse3)" >&2
	exit 1
fi

mkdir -p "$DEMO/mnt"
chmod 700 "$DEMO"

# A mount left behind by a killed demo is cleaned up first.
if grep -q " $DEMO/mnt " /proc/self/mountinfo; then
	echo "demo: $DEMO/mnt is still mounted from an earlier run; unmounting it"
	"$COFFER" unmount "$DEMO/mnt"
fi

if [ ! -f "$DEMO/key" ]; then
	"$COFFER" keygen --out "$DEMO/key" >/dev/null
fi
if [ ! -f "$DEMO/.initialised" ]; then
	"$COFFER" init --store "$DEMO/store" --key-file "$DEMO/key"
	touch "$DEMO/.initialised"
fi

cat <<TEXT

coffer demo: an encrypted volume in ./demo/store, mounted at ./demo/mnt.

In another terminal, use it like any directory:
    cp -a /etc/hostname README.md ./demo/mnt/
    mkdir -p ./demo/mnt/notes && echo hello > ./demo/mnt/notes/hi.txt
    ls -l ./demo/mnt ./demo/mnt/notes && cat ./demo/mnt/notes/hi.txt
Then see what the store holds (ciphertext under encrypted names):
    find ./demo/store -type f | head; grep -r hello ./demo/store || echo "no plaintext"

Stop with Ctrl-C here (or: bin/coffer unmount ./demo/mnt): pending uploads
are flushed, then the volume is unmounted. Run make demo again to remount;
delete ./demo to start over (the key in ./demo/key is the only way in).

TEXT

exec "$COFFER" mount --store "$DEMO/store" --key-file "$DEMO/key" --cache-dir "$DEMO/cache" "$DEMO/mnt"
