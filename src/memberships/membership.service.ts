import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { invalidArgument, NotFoundError, Violations } from "../common/errors.js";
import { isUuid, requireId } from "../common/ids.js";
import { decodePageToken, encodePageToken, pageSize, queryFingerprint } from "../common/pagination.js";
import { Membership } from "./membership.entity.js";
import { MEMBERSHIP_NOT_FOUND, MembershipRepository } from "./membership.repository.js";

export interface MembershipPage {
  memberships: Membership[];
  nextPageToken: string;
  totalSize: number;
}

function optionalId(value: string, field: string, violations: Violations): string | undefined {
  if (value === "") return undefined;
  if (!isUuid(value)) {
    violations.add(field, `must be a UUID, got "${value.slice(0, 64)}"`);
    return undefined;
  }
  return value.toLowerCase();
}

export class MembershipService {
  private readonly memberships: MembershipRepository;

  /** @param actor who is acting, a UUID, or undefined when anonymous. */
  constructor(
    private readonly em: EntityManager,
    private readonly actor: string | undefined,
  ) {
    this.memberships = new MembershipRepository(em);
  }

  async create(input: { tenantId: string; userId: string }): Promise<Membership> {
    const violations = new Violations();
    for (const [field, value] of [
      ["membership.tenant_id", input.tenantId],
      ["membership.user_id", input.userId],
    ] as const) {
      if (value === "") violations.add(field, "is required");
      else if (!isUuid(value)) violations.add(field, `must be a UUID, got "${value.slice(0, 64)}"`);
    }
    violations.throwIfAny();
    // The tenant's state is read under a share lock in the same transaction
    // as the insert, so a concurrent suspension or deletion either waits for
    // this membership or is seen by it.
    return this.em.transactional(async (tx) => {
      const memberships = new MembershipRepository(tx);
      await memberships.assertTenantAcceptsMembers(input.tenantId.toLowerCase());
      const now = new Date();
      const membership = tx.create(Membership, {
        id: randomUUID(),
        tenantId: input.tenantId.toLowerCase(),
        userId: input.userId.toLowerCase(),
        createdBy: this.actor ?? null,
        updatedBy: this.actor ?? null,
        createdAt: now,
        updatedAt: now,
      });
      await memberships.insert(membership);
      return membership;
    });
  }

  get(id: string): Promise<Membership> {
    return this.memberships.findById(requireId(id, "id"));
  }

  async delete(id: string): Promise<void> {
    const deleted = await this.memberships.delete(requireId(id, "id"));
    if (!deleted) throw new NotFoundError(MEMBERSHIP_NOT_FOUND, `membership ${id} not found`, { id });
  }

  async list(request: { tenantId: string; userId: string; pageSize: number; pageToken: string }): Promise<MembershipPage> {
    const violations = new Violations();
    const filter = {
      tenantId: optionalId(request.tenantId, "tenant_id", violations),
      userId: optionalId(request.userId, "user_id", violations),
    };
    violations.throwIfAny();
    const limit = pageSize(request.pageSize);
    const fingerprint = queryFingerprint([filter.tenantId ?? "", filter.userId ?? ""]);
    const cursor = decodePageToken(request.pageToken, fingerprint, 2);
    if (cursor && !(/^-?\d{1,17}$/.test(cursor.keys[0]!) && isUuid(cursor.keys[1]!))) {
      throw invalidArgument("page_token", "is malformed: pass the next_page_token of a previous response");
    }
    const [rows, totalSize] = await Promise.all([
      this.memberships.list(filter, cursor?.keys as [string, string] | undefined, limit + 1),
      this.memberships.count(filter),
    ]);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      memberships: page.map((row) => row.membership),
      nextPageToken: rows.length > limit && last ? encodePageToken(fingerprint, { keys: last.cursor }) : "",
      totalSize,
    };
  }
}
