import type { Platform } from "@mikro-orm/postgresql";

/**
 * Reads timestamps of rows fetched with raw SQL: they arrive as text (MikroORM
 * turns off `pg`'s date parser so that it can parse them itself), and are read
 * with the platform's parser, as the ORM would.
 */
export function rowDates(platform: Platform): (value: unknown) => Date {
  return (value) => (value instanceof Date ? value : (platform.parseDate(value as string) as Date));
}
