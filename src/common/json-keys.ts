/**
 * Keys of client JSON documents (`params`): how one is written in a field
 * path, and the rules every way of reading them shares.
 */

/**
 * A key as one segment of a field path (google.rpc.BadRequest fields, update
 * masks, filters): as is when it is letters, digits, `_` and `-`; otherwise
 * in backticks, with a backtick doubled (AIP-161), so that a key with a dot
 * reads as one segment: tenant.params.`example.com`.limit
 */
export function keySegment(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : `\`${key.replace(/`/g, "``")}\``;
}

/**
 * protobuf-es, which reads every request, copies a Struct's keys into a plain
 * object, where assigning `__proto__` sets the prototype instead: the key
 * would vanish, so a document holding one is refused rather than changed.
 */
export const PROTO_KEY = "__proto__";
export const PROTO_KEY_RULE =
  "a key named __proto__ is not accepted: the protobuf runtime would drop it, so it could not be stored and read back";

/** JSON.parse keeps the last of duplicate names; RFC 8259 leaves their meaning open, so they are refused. */
export const DUPLICATE_NAME_RULE = "appears more than once in the same JSON object: names must be unique";
