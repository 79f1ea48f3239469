import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import { AbortedError, FailedPreconditionError, invalidArgument, NotFoundError, Violations } from "../common/errors.js";
import { isUuid, optionalId, requireId } from "../common/ids.js";
import { cutPage, decodePageToken, pageSize, queryFingerprint } from "../common/pagination.js";
import { Membership } from "./membership.entity.js";
import { MembershipRepository } from "./membership.repository.js";
import { membershipEtag } from "./membership.mapper.js";
import { checkRoles, hasAdminRole } from "./membership.roles.js";
import { ETAG_MISMATCH, LAST_ADMIN, MEMBERSHIP_NOT_FOUND } from "../common/reasons.js";
import type { Deadline } from "../common/deadline.js";
import { boundedTransaction, readTimeoutMs } from "../database/bounded.js";
import { readEventSequence, tagTransaction, WriteReceipt } from "../events/event-context.js";

export interface MembershipChanges {
  id: string;
  roles: readonly string[];
  etag: string;
  /** `update_mask.paths`; empty means `roles`. */
  paths: readonly string[];
}

/**
 * True when removing the membership, or its admin role, would leave its
 * tenant without an administrator. `adminIds` are the tenant's admins as
 * locked by MembershipRepository.findForChange.
 */
function isLastAdmin(membership: Membership, adminIds: readonly string[]): boolean {
  return adminIds.length === 1 && adminIds[0] === membership.id;
}

function lastAdmin(membership: Membership): FailedPreconditionError {
  return new FailedPreconditionError(
    LAST_ADMIN,
    "this membership is the tenant's last administrator: give another member the admin role first",
    { tenant_id: membership.tenantId },
  );
}

export interface MembershipPage {
  memberships: Membership[];
  nextPageToken: string;
  totalSize: number;
}

export interface NewMembership {
  tenantId: string;
  userId: string;
  roles?: readonly string[];
}

/**
 * A new membership from a CreateMembership request, validated
 * (INVALID_ARGUMENT with every violation); `actor` (a UUID, or undefined
 * when anonymous) is recorded as its creator.
 */
export function newMembership(input: NewMembership, actor: string | undefined): Membership {
  const violations = new Violations();
  for (const [field, value] of [
    ["membership.tenant_id", input.tenantId],
    ["membership.user_id", input.userId],
  ] as const) {
    if (value === "") violations.add(field, "is required");
    else if (!isUuid(value)) violations.add(field, `must be a UUID, got "${value.slice(0, 64)}"`);
  }
  const roles = checkRoles(input.roles ?? [], "membership.roles", violations);
  violations.throwIfAny();
  const now = new Date();
  return {
    id: randomUUID(),
    tenantId: input.tenantId.toLowerCase(),
    userId: input.userId.toLowerCase(),
    createdBy: actor ?? null,
    updatedBy: actor ?? null,
    createdAt: now,
    updatedAt: now,
    roles,
    version: 1,
  };
}

export class MembershipService {
  /**
   * @param actor who is acting, a UUID, or undefined when anonymous.
   * @param receipt for the change feed: the request, and the event sequence of each write.
   * @param deadline where the database work ends: writes run in a bounded
   *   transaction, reads are cancelled when it passes.
   */
  constructor(
    private readonly em: EntityManager,
    private readonly actor: string | undefined,
    private readonly receipt: WriteReceipt = new WriteReceipt(actor),
    private readonly deadline?: Deadline,
  ) {}

  /**
   * Creates in a transaction of its own (nested in the request's, a
   * request_id's, when there is one); else see MembershipInserter.
   */
  create(input: NewMembership): Promise<Membership> {
    return this.insert(newMembership(input, this.actor));
  }

  /**
   * Inserts a membership built by newMembership (validated, with its id and
   * creator), as create does; MembershipInserter sends here the ones its
   * statement skipped, so that they keep the id they were given.
   */
  async insert(membership: Membership): Promise<Membership> {
    // The tenant's state is read under a share lock in the same transaction
    // as the insert, so a concurrent suspension or deletion either waits for
    // this membership or is seen by it.
    return boundedTransaction(this.em, this.deadline, async (tx) => {
      const memberships = new MembershipRepository(tx);
      await memberships.assertTenantAcceptsMembers(membership.tenantId);
      await memberships.insert(tx.create(Membership, membership));
      await readEventSequence(tx, this.receipt);
      return membership;
    });
  }

  get(id: string): Promise<Membership> {
    const membershipId = requireId(id, "id");
    return new MembershipRepository(this.em).findById(membershipId, readTimeoutMs(this.deadline));
  }

  /** Changes the roles; the tenant keeps at least one admin if it had one. */
  async update(changes: MembershipChanges): Promise<Membership> {
    const id = requireId(changes.id, "membership.id");
    const violations = new Violations();
    changes.paths.forEach((path, i) => {
      if (path !== "roles") violations.add(`update_mask.paths[${i}]`, `unknown path "${path}": only roles can be updated`);
    });
    const roles = checkRoles(changes.roles, "membership.roles", violations);
    violations.throwIfAny();
    return boundedTransaction(this.em, this.deadline, async (tx) => {
      await tagTransaction(tx, this.receipt);
      const { membership, adminIds } = await new MembershipRepository(tx).findForChange(id);
      if (changes.etag !== "" && changes.etag !== membershipEtag(membership)) {
        throw new AbortedError(ETAG_MISMATCH, "the membership was changed since the etag was read: read it again and retry", {
          current_etag: membershipEtag(membership),
        });
      }
      if (!hasAdminRole(roles) && isLastAdmin(membership, adminIds)) throw lastAdmin(membership);
      membership.roles = roles;
      membership.updatedBy = this.actor ?? null;
      membership.updatedAt = new Date();
      await tx.flush();
      await readEventSequence(tx, this.receipt);
      return membership;
    });
  }

  async delete(id: string): Promise<void> {
    const membershipId = requireId(id, "id");
    await boundedTransaction(this.em, this.deadline, async (tx) => {
      await tagTransaction(tx, this.receipt);
      const memberships = new MembershipRepository(tx);
      const { membership, adminIds } = await memberships.findForChange(membershipId);
      if (isLastAdmin(membership, adminIds)) throw lastAdmin(membership);
      const deleted = await memberships.delete(membership.id);
      if (!deleted) throw new NotFoundError(MEMBERSHIP_NOT_FOUND, `membership ${id} not found`, { id });
      await readEventSequence(tx, this.receipt);
    });
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
    const memberships = new MembershipRepository(this.em);
    const timeoutMs = readTimeoutMs(this.deadline);
    const [rows, totalSize] = await Promise.all([
      memberships.list(filter, cursor?.keys as [string, string] | undefined, limit + 1, timeoutMs),
      memberships.count(filter, timeoutMs),
    ]);
    const page = cutPage(rows, limit, fingerprint);
    return { memberships: page.rows.map((row) => row.membership), nextPageToken: page.nextPageToken, totalSize };
  }
}
