#!/bin/sh
# udhcpc event script of the test deploy environment (see init.sh): sets the address,
# the default route and /etc/resolv.conf (of the initramfs) from the lease.
# udhcpc exports: interface ip subnet router dns domain.

case "$1" in
deconfig)
  ip -4 addr flush dev "$interface"
  ip link set dev "$interface" up
  ;;
bound | renew)
  ip -4 addr flush dev "$interface"
  ip addr add "$ip/${subnet:-255.255.255.0}" dev "$interface"
  for r in $router; do
    ip route replace default via "$r" dev "$interface"
    break
  done
  : >/etc/resolv.conf
  [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
  for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
  read -r up _ </proc/uptime
  echo "deploy-env: [$up] lease $ip/${subnet:-?} on $interface from ${serverid:-?}, router ${router:-none}"
  ;;
leasefail | nak)
  echo "deploy-env: udhcpc $1 on $interface${message:+: $message}"
  ;;
esac
exit 0
