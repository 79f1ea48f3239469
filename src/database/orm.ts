import { MikroORM, type Options } from "@mikro-orm/postgresql";
import { Migrator } from "@mikro-orm/migrations";
import { TenantSchema } from "../tenants/tenant.entity.js";
import { MembershipSchema } from "../memberships/membership.entity.js";
import { Migration20261127000000_initial } from "./migrations/Migration20261127000000_initial.js";
import { Migration20261127010000_request_ids } from "./migrations/Migration20261127010000_request_ids.js";
import { Migration20261127020000_tenant_lifecycle } from "./migrations/Migration20261127020000_tenant_lifecycle.js";
import { Migration20261127030000_membership_roles } from "./migrations/Migration20261127030000_membership_roles.js";
import { Migration20261127050000_tenant_notify } from "./migrations/Migration20261127050000_tenant_notify.js";
import { Migration20261128000000_events } from "./migrations/Migration20261128000000_events.js";
import { Migration20261128020000_params_schemas } from "./migrations/Migration20261128020000_params_schemas.js";
import { Migration20261128030000_batch_event_sequences } from "./migrations/Migration20261128030000_batch_event_sequences.js";

/** Every migration, in order. Listed explicitly so no file discovery (and no TypeScript loader) is needed at run time. */
export const migrations = [
  { name: "Migration20261127000000_initial", class: Migration20261127000000_initial },
  { name: "Migration20261127010000_request_ids", class: Migration20261127010000_request_ids },
  { name: "Migration20261127020000_tenant_lifecycle", class: Migration20261127020000_tenant_lifecycle },
  { name: "Migration20261127030000_membership_roles", class: Migration20261127030000_membership_roles },
  { name: "Migration20261127050000_tenant_notify", class: Migration20261127050000_tenant_notify },
  { name: "Migration20261128000000_events", class: Migration20261128000000_events },
  { name: "Migration20261128020000_params_schemas", class: Migration20261128020000_params_schemas },
  { name: "Migration20261128030000_batch_event_sequences", class: Migration20261128030000_batch_event_sequences },
];

export interface OrmOptions {
  databaseUrl: string;
  poolSize?: number;
  /** How long a request may wait for a free connection before UNAVAILABLE. */
  acquireTimeoutMs?: number;
  debug?: boolean;
  /** Where the ORM's own messages (migrations applied) go. */
  logger?: (message: string) => void;
}

export function ormConfig(options: OrmOptions): Options {
  return {
    clientUrl: options.databaseUrl,
    entities: [TenantSchema, MembershipSchema],
    extensions: [Migrator],
    // Every request works on its own fork, carried in the handler context;
    // touching the global identity map is a bug.
    allowGlobalContext: false,
    debug: options.debug ?? false,
    logger: options.logger ?? (() => {}),
    pool: {
      min: 0,
      max: options.poolSize ?? 10,
      // Fail fast rather than queue forever when the pool is exhausted or the
      // database is unreachable.
      acquireTimeoutMillis: options.acquireTimeoutMs ?? 5_000,
    },
    driverOptions: { connection: { connectionTimeoutMillis: 5_000 } },
    migrations: {
      migrationsList: migrations,
      tableName: "mikro_orm_migrations",
      transactional: true,
      allOrNothing: true,
    },
  };
}

/** The one place the ORM is created. */
export async function initORM(options: OrmOptions): Promise<MikroORM> {
  return MikroORM.init(ormConfig(options));
}

export async function migrate(orm: MikroORM): Promise<string[]> {
  const applied = await orm.getMigrator().up();
  return applied.map((m) => m.name);
}
