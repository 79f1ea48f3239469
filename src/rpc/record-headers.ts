import { validateHeaderName, validateHeaderValue } from "node:http";

/**
 * A `Headers` over a plain object, for the gRPC fast path: the request's
 * headers as Node parsed them, and the response's headers and trailers. The
 * Fetch `Headers` validates every name and value on each call and keeps them
 * sorted, work that Node's HTTP/2 layer does once more anyway; on a cache
 * hit the three `Headers` of a call cost a noticeable share of it.
 *
 * Names are compared case-insensitively (stored lowercase); repeated values
 * are joined with ", " as `Headers` does. Iteration is in insertion order.
 * Names and values set or appended are checked as Node checks them when it
 * writes them, so that a bad one fails where it is set (inside the call,
 * answered INTERNAL and logged like any other failure), not later, when
 * the answer is written.
 */
export class RecordHeaders {
  private readonly map: Record<string, string> = Object.create(null) as Record<string, string>;

  constructor(init?: Record<string, string | string[] | number | undefined>) {
    if (init) {
      for (const key in init) {
        if (key.charCodeAt(0) === 58 /* ":" pseudo-headers */) continue;
        const value = init[key];
        if (value === undefined) continue;
        this.map[key.toLowerCase()] = Array.isArray(value) ? value.join(", ") : String(value);
      }
    }
  }

  /** As a `Headers` (the type Connect's interceptors and contexts use). */
  asHeaders(): Headers {
    return this as unknown as Headers;
  }

  append(name: string, value: string): void {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    const key = name.toLowerCase();
    const current = this.map[key];
    this.map[key] = current === undefined ? value : `${current}, ${value}`;
  }
  delete(name: string): void {
    delete this.map[name.toLowerCase()];
  }
  get(name: string): string | null {
    return this.map[name.toLowerCase()] ?? null;
  }
  has(name: string): boolean {
    return name.toLowerCase() in this.map;
  }
  set(name: string, value: string): void {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    this.map[name.toLowerCase()] = value;
  }
  getSetCookie(): string[] {
    const value = this.map["set-cookie"];
    return value === undefined ? [] : [value];
  }
  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const key in this.map) callback.call(thisArg, this.map[key]!, key, this.asHeaders());
  }
  *entries(): IterableIterator<[string, string]> {
    for (const key in this.map) yield [key, this.map[key]!];
  }
  *keys(): IterableIterator<string> {
    for (const key in this.map) yield key;
  }
  *values(): IterableIterator<string> {
    for (const key in this.map) yield this.map[key]!;
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}
