#!/usr/bin/env bash
# Installs the Debian 12 packages bootbox needs to run (lab mode) and to test
# against its real peers. Idempotent; run as root.
set -euo pipefail
what="${1:-test}"   # run | test

run_pkgs=(iproute2 iputils-ping procps util-linux coreutils kmod ca-certificates curl
  python3 make g++ qemu-system-x86 ipxe-qemu ovmf ipxe busybox-static tcpdump)
# npm installs Node 24 itself (package "node"); any Node >= 18 with npm can bootstrap it.
if ! command -v npm >/dev/null 2>&1; then run_pkgs+=(nodejs npm); fi
test_pkgs=(isc-dhcp-client kea-admin dnsmasq-base isc-dhcp-server isc-dhcp-relay
  tftp-hpa atftp atftpd curl udpcast mosquitto mosquitto-clients openssl chromium
  wimtools exfatprogs ntfs-3g exfat-fuse fuse3 mount qemu-user-static g++-aarch64-linux-gnu
  nginx-light xz-utils file zstd qemu-system-arm qemu-efi-aarch64)

pkgs=("${run_pkgs[@]}")
[ "$what" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # No daemon may start on its own during install (there is no init system here anyway).
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# First stages that come from Debian packages the box does not install: fetch the package
# (for another architecture without adding it to this machine), keep only the one file
# where the box looks for it (firmware/images/boot-tree.ts).
#   ARM64 nodes: Debian's signed GRUB netboot image (Debian has no arm64 iPXE).
#   x64 Secure Boot: Microsoft-signed shim and Debian's signed GRUB netboot image, which the
#   box serves as grubx64.efi (the name shim loads).
host_arch=$(dpkg --print-architecture)
updated= # foreign architectures whose lists this run has updated
fetch_first_stage() { # arch package file-in-package destination
  local arch=$1 pkg=$2 file=$3 dest=$4
  [ -s "$dest" ] && return 0
  echo "setup: fetching $pkg ($arch) for $(basename "$dest")"
  local work o=(-qq)
  work=$(mktemp -d); chmod 755 "$work"
  mkdir -p /usr/lib/bootbox
  if [ "$arch" != "$host_arch" ]; then
    local lists=/var/cache/bootbox/${arch}lists
    mkdir -p "$lists/partial"
    # Own lists, and no package cache files: the host's apt state stays as it was.
    o+=("-oAPT::Architecture=$arch" "-oAPT::Architectures=$arch" "-oDir::State::Lists=$lists"
      -oDir::Cache::pkgcache= -oDir::Cache::srcpkgcache=)
    case " $updated " in
    *" $arch "*) ;;
    *) apt-get "${o[@]}" update && touch "$lists/.bootbox-updated" && updated="$updated $arch" ;;
    esac
  fi
  if (cd "$work" && apt-get "${o[@]}" -oAPT::Sandbox::User=root download "$pkg") &&
    dpkg-deb -x "$work/$(cd "$work" && ls "${pkg}"_*.deb | head -1)" "$work/x" && [ -s "$work/x/$file" ]; then
    cp "$work/x/$file" "$dest.tmp" && mv "$dest.tmp" "$dest"
  else
    echo "setup: could not fetch $pkg ($arch); $(basename "$dest") will be missing from the boot tree" >&2
  fi
  rm -rf "$work"
}
fetch_first_stage arm64 grub-efi-arm64-signed usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed \
  /usr/lib/bootbox/grubnetaa64.efi
fetch_first_stage amd64 shim-signed usr/lib/shim/shimx64.efi.signed /usr/lib/bootbox/shimx64.efi
fetch_first_stage amd64 grub-efi-amd64-signed usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed \
  /usr/lib/bootbox/grubnetx64.efi
