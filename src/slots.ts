/** A counting semaphore, shared by the folder sink's writes and the folder source's reads. */

/** A counting semaphore: at most `limit` holders, the others wait in arrival order. */
export class Slots {
  readonly limit: number;
  #used = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  acquire(): Promise<void> | undefined {
    if (this.#used < this.limit) {
      this.#used++;
      return undefined;
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    // The slot passes straight to the next waiter.
    if (next) next();
    else this.#used--;
  }
}
