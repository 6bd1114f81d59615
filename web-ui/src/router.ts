/**
 * Hash routing: `#/machines`, `#/machines/<mac>`, `#/images` … The box serves the same
 * index.html for every non-API path, and a hash never reaches the server.
 */
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  page: string;
  params: string[];
}

export function parseHash(hash: string): Route {
  const path = hash.replace(/^#\/?/, '').split('?')[0] ?? '';
  const parts = path.split('/').filter(Boolean);
  const decoded = parts.map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { page: decoded[0] ?? '', params: decoded.slice(1) };
}

/** `href('machines', mac)` → `#/machines/aa:bb:…` (colons kept readable). */
export function href(...parts: string[]): string {
  return `#/${parts.map((p) => encodeURIComponent(p).replace(/%3A/gi, ':')).join('/')}`;
}

export function navigate(to: string): void {
  if (location.hash !== to) location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
