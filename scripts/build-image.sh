#!/usr/bin/env bash
# Builds the operator image without a container daemon: the static (musl) release binary, then an
# OCI image layout made with umoci holding exactly what deploy/image/Dockerfile puts in the image
# (the binary and the CA roots, user 65532, entrypoint /peoplesync). Then it proves the image: it
# unpacks the built image afresh and runs its entrypoint with `--version` inside the unpacked root
# filesystem (chroot as 65532 when run as root).
#
#   scripts/build-image.sh [TAG]     # default tag: the crate version
#
# The layout lands in $CARGO_TARGET_DIR/image/peoplesync (push it with e.g.
# `skopeo copy oci:<layout>:<tag> docker://registry/peoplesync:<tag>`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/peoplesync/target}"
target=x86_64-unknown-linux-musl
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
tag="${1:-$version}"
step() { printf '[image] %s\n' "$*" >&2; }

missing=()
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
command -v umoci >/dev/null 2>&1 || missing+=(umoci)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
if ((${#missing[@]})); then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    step "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
if ! rustup target list --installed | grep -qx "$target"; then
  step "adding the Rust target $target"
  rustup target add "$target"
fi

step "building the static release binary (the first build takes several minutes)"
started=$SECONDS
cargo build --release --locked --quiet --target "$target" --bin peoplesync
binary="$CARGO_TARGET_DIR/$target/release/peoplesync"
step "built in $((SECONDS - started)) s: $(du -h "$binary" | cut -f1)"
if ! file "$binary" | grep -Eq 'statically linked|static-pie linked'; then
  echo "the binary is not static: $(file "$binary")" >&2
  exit 1
fi

work="$CARGO_TARGET_DIR/image"
layout="$work/peoplesync"
bundle="$work/bundle"
rm -rf "$layout" "$bundle" "$work/check"
mkdir -p "$work"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --rootless --image "$layout:$tag" "$bundle" >/dev/null
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$bundle/rootfs/etc/ssl/certs/ca-certificates.crt"
install -D -m 0755 "$binary" "$bundle/rootfs/peoplesync"
# Symbols are not needed at run time (panics still name the message and location).
if command -v strip >/dev/null 2>&1; then strip "$bundle/rootfs/peoplesync"; fi
umoci repack --image "$layout:$tag" "$bundle"
umoci config --image "$layout:$tag" \
  --os linux --architecture amd64 \
  --config.user 65532:65532 \
  --config.entrypoint /peoplesync --config.cmd controller \
  --config.label "org.opencontainers.image.title=peoplesync" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.licenses=Apache-2.0"
umoci gc --layout "$layout"
rm -rf "$bundle"

# The proof: unpack the finished image and run what its config says to run.
umoci unpack --rootless --image "$layout:$tag" "$work/check" >/dev/null
config="$work/check/config.json"
entrypoint="$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["process"]["args"][:1]))' "$config")"
user="$(python3 -c 'import json,sys; u=json.load(open(sys.argv[1]))["process"]["user"]; print("%d:%d" % (u["uid"], u["gid"]))' "$config")"
files="$(cd "$work/check/rootfs" && find . -type f | sort | tr '\n' ' ')"
step "image $tag: entrypoint $entrypoint, user $user, files: $files"
if [[ "$entrypoint" != "/peoplesync" || "$user" != "65532:65532" ]]; then
  echo "unexpected image config: entrypoint $entrypoint, user $user" >&2
  exit 1
fi
if [[ "$(id -u)" -eq 0 ]] && command -v chroot >/dev/null 2>&1; then
  out="$(chroot --userspec="$user" "$work/check/rootfs" "$entrypoint" --version)"
else
  out="$("$work/check/rootfs$entrypoint" --version)"
fi
rm -rf "$work/check"
if [[ "$out" != "peoplesync $version" ]]; then
  echo "the entrypoint answered '$out', expected 'peoplesync $version'" >&2
  exit 1
fi
step "the entrypoint runs: $out"
echo "$layout:$tag"
