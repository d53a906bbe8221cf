/** Endpoint URLs: `tcp://host:port`, `tls://…`, `udp://…`, `ws://…`; the port defaults to 7070. */
import { FramewireError } from '../errors.js';

export const DEFAULT_PORT = 7070;

/** Parses an endpoint. A bare `host:port` or `:port` means tcp. */
export function parseEndpoint(text: string, knownSchemes: readonly string[]): URL {
  let input = text.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(input))
    input = `tcp://${input.startsWith(':') ? `0.0.0.0${input}` : input}`;
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new FramewireError('ERR_BAD_URL', `"${text}" is not a valid endpoint URL`, {
      hint: 'write it like tcp://127.0.0.1:7070',
    });
  }
  const scheme = url.protocol.slice(0, -1);
  if (!knownSchemes.includes(scheme)) {
    throw new FramewireError('ERR_UNSUPPORTED_SCHEME', `scheme "${scheme}" in "${text}" is not supported`, {
      hint: `use one of: ${knownSchemes.map((s) => `${s}://`).join(', ')}`,
    });
  }
  if (!url.hostname) {
    throw new FramewireError('ERR_BAD_URL', `"${text}" names no host`, {
      hint: 'write it like tcp://127.0.0.1:7070',
    });
  }
  return url;
}

export function hostOf(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

export function portOf(url: URL): number {
  return url.port === '' ? DEFAULT_PORT : Number(url.port);
}
