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
  nginx-light xz-utils file zstd)

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

# ARM64 nodes boot Debian's signed GRUB netboot image (Debian has no arm64 iPXE). Fetch the
# arm64 package without adding the architecture to this machine, and keep only that file
# where the box looks for it.
grub=/usr/lib/bootbox/grubnetaa64.efi
if [ ! -s "$grub" ]; then
  echo "setup: fetching grub-efi-arm64-signed (arm64 first stage)"
  work=$(mktemp -d); chmod 755 "$work"
  lists=/var/cache/bootbox/arm64lists
  mkdir -p "$lists/partial" /usr/lib/bootbox
  o=(-oAPT::Architecture=arm64 -oAPT::Architectures=arm64 "-oDir::State::Lists=$lists" -qq)
  if apt-get "${o[@]}" update && (cd "$work" && apt-get "${o[@]}" download grub-efi-arm64-signed); then
    dpkg-deb -x "$work"/grub-efi-arm64-signed_*.deb "$work/x"
    cp "$work/x/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed" "$grub"
  else
    echo "setup: could not fetch grub-efi-arm64-signed; ARM64 nodes will get no first stage" >&2
  fi
  rm -rf "$work"
fi
