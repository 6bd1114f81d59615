/**
 * Router-advertisement responder for the private link. Netboot clients (iPXE above all)
 * configure IPv4 and IPv6 together and wait ~15 s for an IPv6 router that a v4-only
 * cluster network never has. Answering their router solicitation with "no router, no
 * DHCPv6" ends that wait. It never claims to be a router (lifetime 0).
 */
import type { Icmp6Endpoint } from '../../../board/icmp6-endpoint.ts';
import type { Clock } from '../../core/clock.ts';
import { DecodeError } from '../../core/errors.ts';
import { decodeRouterSolicitation, encodeRouterAdvertisement, NO_ROUTER } from './codec.ts';

export interface NdpEventMap {
  'ndp.advertised': { ts: string; to: string };
}

export interface NdpCounters {
  solicitations: number;
  advertisements: number;
  dropped: number;
  rateLimited: number;
}

export class RouterAdvertiser {
  readonly counters: NdpCounters = { solicitations: 0, advertisements: 0, dropped: 0, rateLimited: 0 };
  private readonly ep: Icmp6Endpoint;
  private readonly clock: Clock;
  private lastMulticast = -Infinity;
  private readonly ra = encodeRouterAdvertisement(NO_ROUTER);

  constructor(ep: Icmp6Endpoint, clock: Clock) {
    this.ep = ep;
    this.clock = clock;
  }

  start(): void {
    this.ep.onMessage((msg, src) => this.onMessage(msg, src));
  }

  onMessage(msg: Buffer, src: string): void {
    if (msg[0] !== 133) return; // other ICMPv6 traffic is not ours
    try {
      decodeRouterSolicitation(msg);
    } catch (e) {
      if (e instanceof DecodeError) this.counters.dropped++;
      return;
    }
    this.counters.solicitations++;
    if (src && src !== '::') {
      // RFC 4861 §6.2.6: a router may answer a solicitation from a known address by unicast.
      this.ep.send(this.ra, src, (err) => {
        if (!err) this.counters.advertisements++;
      });
      return;
    }
    // From the unspecified address: multicast, at most one per 3 s (MIN_DELAY_BETWEEN_RAS).
    const now = this.clock.now();
    if (now - this.lastMulticast < 3000) {
      this.counters.rateLimited++;
      return;
    }
    this.lastMulticast = now;
    this.ep.send(this.ra, 'ff02::1', (err) => {
      if (!err) this.counters.advertisements++;
    });
  }

  stop(): void {
    this.ep.close();
  }
}
