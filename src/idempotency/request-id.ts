import { createHash } from "node:crypto";
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/postgresql";
import { AlreadyExistsError } from "../common/errors.js";
import { REQUEST_ID_REUSED } from "../common/reasons.js";
import { sqlQuery } from "../database/sql.js";
import { readEventSequence, tagTransaction, type WriteReceipt } from "../events/event-context.js";
import { boundedTransaction } from "../database/bounded.js";
import type { Deadline } from "../common/deadline.js";

/**
 * JSON-like text with sorted keys, so that the same request always hashes the
 * same whatever the order of its map entries. Works on the message object
 * itself (not toJson, which throws on values that validation refuses later).
 */
function canonical(value: unknown): string {
  if (typeof value === "bigint") return `"${value}"`;
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

export function requestHash(request: { requestId: string }): string {
  const { requestId: _ignored, ...rest } = request;
  return createHash("sha256").update(canonical(rest)).digest("hex");
}

/**
 * Runs a create at most once per `request_id` (AIP-155). The id is claimed in
 * the same transaction as the create, so a create that committed always has
 * its response stored, and one that failed leaves no trace and may be
 * retried. A concurrent duplicate waits on the claim (the primary key) and
 * then answers with the stored response. The transaction ends at the
 * caller's deadline.
 */
export async function oncePerRequestId<Response extends DescMessage>(
  em: EntityManager,
  deadline: Deadline | undefined,
  key: { requestId: string; method: string; hash: string },
  responseSchema: Response,
  receipt: WriteReceipt,
  create: (em: EntityManager) => Promise<MessageShape<Response>>,
): Promise<MessageShape<Response>> {
  return boundedTransaction(em, deadline, async (tx) => {
    await tagTransaction(tx, receipt);
    const claimed = await sqlQuery<{ request_id: string }>(
      tx,
      `INSERT INTO "RequestIds" (request_id, method, request_hash) VALUES (?::uuid, ?, ?)
       ON CONFLICT (request_id) DO NOTHING RETURNING request_id`,
      [key.requestId, key.method, key.hash],
    );
    if (claimed.length === 0) {
      const [previous] = await sqlQuery<{ method: string; request_hash: string; response: Buffer | null; event_sequence: string | null }>(
        tx,
        `SELECT method, request_hash, response, event_sequence FROM "RequestIds" WHERE request_id = ?::uuid`,
        [key.requestId],
      );
      if (previous && previous.method === key.method && previous.request_hash === key.hash && previous.response) {
        if (previous.event_sequence) receipt.eventSequence = BigInt(previous.event_sequence);
        return fromBinary(responseSchema, new Uint8Array(previous.response));
      }
      throw new AlreadyExistsError(
        REQUEST_ID_REUSED,
        "this request_id was already used for a different request: use a new UUID for each distinct request",
        { request_id: key.requestId },
      );
    }
    const response = await create(tx);
    await readEventSequence(tx, receipt);
    await sqlQuery(tx, `UPDATE "RequestIds" SET response = ?, event_sequence = ? WHERE request_id = ?::uuid`, [
      Buffer.from(toBinary(responseSchema, response)),
      receipt.eventSequence?.toString() ?? null,
      key.requestId,
    ]);
    return response;
  });
}

/** Forgets request ids older than the retention (AIP-155 asks for at least a day). */
export async function forgetOldRequestIds(em: EntityManager, retentionMs: number): Promise<number> {
  const rows = await sqlQuery<{ n: string }>(
    em,
    `WITH gone AS (DELETE FROM "RequestIds" WHERE created_at < now() - (? * interval '1 millisecond') RETURNING 1)
     SELECT count(*) AS n FROM gone`,
    [retentionMs],
  );
  return Number(rows[0]?.n ?? 0);
}
