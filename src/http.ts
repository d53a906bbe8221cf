/** What the HTTP servers (the viewer, the ws:// listener) share about a request. */

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
