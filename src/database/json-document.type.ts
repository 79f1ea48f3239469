import { Type } from "@mikro-orm/core";

/**
 * A JSON document column (PostgreSQL jsonb) that the ORM handles as opaque
 * text: the entity holds the parsed object, and everything MikroORM does
 * with the column (snapshots, change detection, INSERT and UPDATE
 * parameters, the rows it hydrates from) sees only the JSON text.
 *
 * Why not MikroORM's own `json` type: it lets the parsed document reach
 * generic ORM helpers (the raw rows it hydrates and merges, snapshots) that
 * inspect objects by their keys: `Utils.isPrimaryKey` and `Utils.equals`
 * read a `constructor` key as the object's class (`equals` throws on
 * `{"constructor": null, "client": 1}`), which is how CreateTenant failed
 * on a `constructor` key (issue 16). A client's document may use any key,
 * so none may be interpreted; as text, none can be. The price: MikroORM no
 * longer knows the column is JSON (no `{ params: { plan: "pro" } }`
 * conditions through the ORM); the service's queries on params are
 * hand-written SQL anyway (filter.sql.ts).
 *
 * A property type rather than hand-written SQL for the inserts (as
 * TenantRepository.insertMany does): updates, deletes and restores change
 * the entity and flush it, so the ORM's handling of the column is what had
 * to change; the entity stays an ordinary one, with params an object.
 */
export class JsonDocumentType extends Type<object | null, string | null> {
  override convertToDatabaseValue(value: object | null): string | null {
    return value == null ? null : JSON.stringify(value);
  }

  override convertToJSValue(value: string | object | null): object | null {
    // Text from the query below; an object if a caller selected the column as jsonb.
    return typeof value === "string" ? (JSON.parse(value) as object) : value;
  }

  /** Read as text, so that even the raw rows the ORM merges never hold the parsed document. */
  override convertToJSValueSQL(key: string): string {
    return `${key}::text`;
  }

  /** Change detection compares the JSON text, never walking the object. */
  override compareAsType(): string {
    return "string";
  }

  override getColumnType(): string {
    return "jsonb";
  }
}
