/** URLs: a request's target for the HTTP servers (the viewer, the ws:// listener), and URLs fit to print. */

/**
 * The URL of an HTTP request's target (`req.url`), or undefined when it is not one a URL can be made of
 * (`//`, `//[`, `//:99999` …): a request a server answers 400, never an exception in its handler.
 */
export function requestUrl(target: string | undefined): URL | undefined {
  try {
    return new URL(target ?? '/', 'http://request');
  } catch {
    return undefined;
  }
}

/**
 * The URL with its secrets replaced by `***`: the password or token before `@`, and the value of a `token`
 * query parameter (`ws://host:8080/ws?token=…`, the viewer's), so that logs and error messages never show
 * them.
 */
export function redact(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*)@/i, (_m, scheme: string, cred: string) => {
      const i = cred.indexOf(':');
      return `${scheme}${i === -1 ? '***' : `${cred.slice(0, i)}:***`}@`;
    })
    .replace(/([?&]token=)[^&#]*/gi, '$1***');
}
