/**
 * The Content-Security-Policy of the viewer's pages (/, /capture, /sync): scripts, styles and connections
 * from the viewer itself only. No 'unsafe-inline': each page's script and style sheet are served files.
 */

/** The policy of a page, with its own `extra` directives (e.g. `img-src 'self' blob:`). */
export function pageCsp(extra: string): string {
  return `default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; ${extra}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
}

export const JS = 'text/javascript; charset=utf-8';
export const CSS = 'text/css; charset=utf-8';
