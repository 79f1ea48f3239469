import { EntitySchema } from "@mikro-orm/core";

/**
 * A row of the seed's `"UserTenantMapping"` table. `userId` refers to a user
 * of the identity system: this service neither owns nor checks users.
 */
export class Membership {
  id!: string;
  tenantId!: string;
  userId!: string;
  createdBy!: string | null;
  updatedBy!: string | null;
  createdAt!: Date;
  updatedAt!: Date;
  /** Checked and de-duplicated role names (see membership.roles.ts); `admin` administers the tenant. */
  roles!: string[];
  /** Row version, the etag. */
  version!: number;
}

export const MembershipSchema = new EntitySchema<Membership>({
  class: Membership,
  tableName: "UserTenantMapping",
  properties: {
    id: { type: "uuid", primary: true, fieldName: "Id" },
    // A plain column rather than a relation: the service never loads a
    // tenant through a membership, and the foreign key lives in the schema.
    tenantId: { type: "uuid", fieldName: "tenantId" },
    userId: { type: "uuid", fieldName: "userId" },
    createdBy: { type: "uuid", nullable: true, fieldName: "createdBy" },
    updatedBy: { type: "uuid", nullable: true, fieldName: "updatedBy" },
    createdAt: { type: "Date", columnType: "timestamptz", fieldName: "createdAt", defaultRaw: "now()" },
    updatedAt: { type: "Date", columnType: "timestamptz", fieldName: "updatedAt", defaultRaw: "now()" },
    roles: { type: "string[]", columnType: "text[]", fieldName: "roles", defaultRaw: "'{}'" },
    version: { type: "integer", version: true, fieldName: "version" },
  },
});

export const membershipConstraints = {
  tenantUser: "UserTenantMapping_tenantId_userId_key",
  tenantForeignKey: "UserTenantMapping_tenantId_fkey",
} as const;
