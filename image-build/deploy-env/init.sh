#!/bin/sh
# bootbox TEST deploy environment: /init (PID 1) of a busybox initramfs, built by
# image-build/deploy-env/build.ts. It proves the boot path and nothing more:
#   print BOOTBOX-DEPLOY-ENV START and the kernel command line on the console,
#   load the NIC modules, DHCP on the boot NIC, POST "deployed" to bootbox,
#   print BOOTBOX-DEPLOY-ENV DONE <mac> (or FAILED <reason>), power off.
# Kernel command line parameters (each may be missing; the console says so):
#   bootbox.url=<base URL of the box>  bootbox.mac=<boot NIC MAC>
#   bootbox.image=<name>               bootbox.token=<opaque>
#   bootbox.watchdog=<seconds> (optional; only shortens the 120 s watchdog, for tests)
# Marker lines start with "BOOTBOX-DEPLOY-ENV "; other lines with "deploy-env: [<uptime>]".
# Whatever happens, the machine powers off within WATCHDOG seconds.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY no_proxy
umask 022

WATCHDOG=120
DHCP_ATTEMPTS=3
REPORT_ATTEMPTS=5
REPORT_TIMEOUT=15

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /run /tmp
exec </dev/console >/dev/console 2>&1

# If PID 1 dies anyway, the kernel panics: reboot then (a QEMU with -no-reboot exits).
echo 10 >/proc/sys/kernel/panic
# Only kernel errors on the console from here on, so that marker lines stay whole.
dmesg -n 4

say() { echo "BOOTBOX-DEPLOY-ENV $*"; }
log() {
  read -r up _ </proc/uptime
  echo "deploy-env: [$up] $*"
}
off() {
  sync
  poweroff -f
  sleep 5
  echo o >/proc/sysrq-trigger
  while :; do sleep 60; done
}
fail() {
  say "FAILED $*"
  off
}

say START
say "CMDLINE $(cat /proc/cmdline)"
[ -r /etc/deploy-env/build-info ] && log "$(cat /etc/deploy-env/build-info)"

url= mac= image= token= watchdog=
set -f # no globbing of command-line words
for arg in $(cat /proc/cmdline); do
  case "$arg" in
  bootbox.url=*) url=${arg#*=} ;;
  bootbox.mac=*) mac=${arg#*=} ;;
  bootbox.image=*) image=${arg#*=} ;;
  bootbox.token=*) token=${arg#*=} ;;
  bootbox.watchdog=*) watchdog=${arg#*=} ;;
  esac
done
set +f

# bootbox.watchdog=<seconds> may shorten the watchdog (5 to 120), never lengthen it.
case "$watchdog" in
'' | *[!0-9]*) ;;
*) [ "$watchdog" -ge 5 ] && [ "$watchdog" -lt "$WATCHDOG" ] && WATCHDOG=$watchdog ;;
esac
(
  sleep "$WATCHDOG"
  say "FAILED watchdog: not done after $WATCHDOG s"
  off
) &

mac=$(echo "$mac" | tr 'A-F-' 'a-f:')
url=${url%/}
[ -n "$url" ] || log "no bootbox.url= on the kernel command line: nowhere to report to"
[ -n "$mac" ] || log "no bootbox.mac= on the kernel command line: using the NIC's own address"
[ -n "$image" ] || log "no bootbox.image= on the kernel command line: reporting an empty image"
[ -n "$token" ] || log "no bootbox.token= on the kernel command line: reporting an empty token"

while read -r ko; do
  [ -n "$ko" ] || continue
  insmod "$ko" || log "insmod $ko failed"
done </etc/deploy-env/modules

# The NIC whose address is bootbox.mac, else the first Ethernet device.
pick_nic() {
  first=
  for d in /sys/class/net/*; do
    [ -e "$d/device" ] || continue
    [ "$(cat "$d/type" 2>/dev/null)" = 1 ] || continue
    if [ -n "$mac" ] && [ "$(cat "$d/address")" = "$mac" ]; then
      echo "${d##*/}"
      return
    fi
    [ -n "$first" ] || first=${d##*/}
  done
  echo "$first"
}

ip link set lo up
nic=
i=0
while [ $i -lt 50 ]; do
  nic=$(pick_nic)
  [ -n "$nic" ] && break
  usleep 200000
  i=$((i + 1))
done
[ -n "$nic" ] || fail "no Ethernet NIC found (modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' '))"
nicmac=$(cat "/sys/class/net/$nic/address")
if [ -z "$mac" ]; then
  mac=$nicmac
elif [ "$mac" != "$nicmac" ]; then
  log "no NIC has address $mac; using $nic ($nicmac)"
fi
log "NIC $nic $nicmac"
ip link set "$nic" up
log "$nic is up, waiting for carrier"
# A DHCPDISCOVER sent before the link is up is lost (e1000 takes a moment): wait for carrier.
i=0
until [ "$(cat "/sys/class/net/$nic/carrier" 2>/dev/null)" = 1 ]; do
  i=$((i + 1))
  if [ $i -gt 100 ]; then
    log "no carrier on $nic after 10 s; trying DHCP anyway"
    break
  fi
  usleep 100000
done
[ $i -gt 100 ] || log "carrier on $nic"

n=0
until timeout -s KILL 40 udhcpc -i "$nic" -f -q -n -t 5 -T 2 -V bootbox-deploy-env \
  -s /etc/deploy-env/udhcpc.script; do
  n=$((n + 1))
  [ $n -lt $DHCP_ATTEMPTS ] || fail "no DHCP lease on $nic after $DHCP_ATTEMPTS attempts"
  log "no DHCP lease on $nic yet, trying again"
done
log "address $(ip -4 -o addr show dev "$nic" | awk '{print $4}'), routes: $(ip route | tr '\n' ';')"

[ -n "$url" ] || fail "no bootbox.url= on the kernel command line"

json() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
body="{\"state\":\"deployed\",\"image\":\"$(json "$image")\",\"token\":\"$(json "$token")\"}"
endpoint="$url/api/v1/nodes/$mac/report"
log "POST $endpoint"
n=0
# busybox wget has no working timeout option here (-T crashes it), hence timeout(1).
until out=$(timeout -s KILL "$REPORT_TIMEOUT" wget -q -O- --post-data "$body" \
  --header 'Content-Type: application/json' "$endpoint" 2>&1); do
  n=$((n + 1))
  log "report failed: ${out:-timed out or killed}"
  # A 4xx (unknown machine, wrong token, bad body) will not change on retry.
  case "$out" in
  *"returned error: HTTP/1."[01]" 4"*) fail "report refused: ${out#*returned error: }" ;;
  esac
  [ $n -lt $REPORT_ATTEMPTS ] || fail "report to $endpoint failed $n times"
  sleep 2
done
[ -n "$out" ] && log "box answered: $out"

say "DONE $mac"
off
