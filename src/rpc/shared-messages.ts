/**
 * Response messages that many calls send as they are and that nobody
 * modifies (a change feed event sent to every binary watcher). A transport
 * may keep the encoding of such a message and send the same bytes to every
 * call; marking a message that is later changed would send stale bytes.
 */
const shared = new WeakSet<object>();

export function markShared<T extends object>(message: T): T {
  shared.add(message);
  return message;
}

export function isShared(message: object): boolean {
  return shared.has(message);
}
