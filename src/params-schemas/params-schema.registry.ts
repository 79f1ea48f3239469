import type { JsonObject } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/postgresql";
import { FailedPreconditionError, type Violations } from "../common/errors.js";
import { PARAMS_MAX_BYTES } from "../tenants/tenant.validation.js";
import { formatBinding, type SchemaVersionRef } from "./params-schema.binding.js";
import { ParamsSchemaCompiler, SchemaCompileError, type CompiledParamsSchema } from "./params-schema.compiler.js";
import { ParamsSchemaRepository } from "./params-schema.repository.js";

export const PARAMS_SCHEMA_UNUSABLE = "PARAMS_SCHEMA_UNUSABLE";

/**
 * The compiled params schemas of this process, by `name@version`. Versions
 * are immutable, so each is compiled once per process (on first use, or
 * when it is registered here) and kept. Reads of tenants never come here.
 */
export class ParamsSchemaRegistry {
  readonly compiler = new ParamsSchemaCompiler();
  private readonly compiled = new Map<string, CompiledParamsSchema>();
  /** How many documents this process compiled for validation (registrations excepted). */
  compiles = 0;

  constructor(private readonly root: EntityManager) {}

  /** Keeps the compiled form of a version just registered, so that its first use compiles nothing. */
  remember(ref: SchemaVersionRef, compiled: CompiledParamsSchema): void {
    if (!this.compiled.has(formatBinding(ref))) this.compiled.set(formatBinding(ref), compiled);
  }

  /**
   * The compiled version, or undefined when it is not registered. `em` is
   * the caller's (in its transaction, if any); without one, a fork of the
   * ORM's. Two requests that miss at once may both read the document, but
   * compiling is synchronous, so only the first compiles it.
   */
  async find(ref: SchemaVersionRef, em?: EntityManager): Promise<CompiledParamsSchema | undefined> {
    const key = formatBinding(ref);
    const hit = this.compiled.get(key);
    if (hit) return hit;
    const stored = await new ParamsSchemaRepository(em ?? this.root.fork()).find(ref.name, ref.version);
    if (!stored?.schema) return undefined;
    const again = this.compiled.get(key);
    if (again) return again;
    let compiled: CompiledParamsSchema;
    try {
      compiled = this.compiler.compile(stored.schema);
    } catch (error) {
      // Only if a stored version stopped compiling (a newer ajv, say): say so instead of INTERNAL.
      if (error instanceof SchemaCompileError) {
        throw new FailedPreconditionError(PARAMS_SCHEMA_UNUSABLE, `the params schema ${key} no longer compiles: ${error.message}`, { params_schema: key });
      }
      throw error;
    }
    this.compiles += 1;
    this.compiled.set(key, compiled);
    return compiled;
  }

  /**
   * Params as they are stored under `ref`: with the schema's defaults filled
   * in, each violation added at `fields.params` + its path
   * (`tenant.params.theme.color`). A version that is not registered is a
   * violation of `fields.binding`. The params must already be valid JSON for
   * the database (checkParams); `inPlace` as in CompiledParamsSchema.apply.
   */
  async apply(
    ref: SchemaVersionRef,
    params: JsonObject,
    fields: { params: string; binding: string },
    violations: Violations,
    options: { em?: EntityManager; inPlace?: boolean } = {},
  ): Promise<JsonObject> {
    const compiled = await this.find(ref, options.em);
    if (compiled === undefined) {
      violations.add(fields.binding, `no params schema ${formatBinding(ref)} is registered (see ParamsSchemaService.ListParamsSchemas)`);
      return params;
    }
    const result = compiled.apply(params, { inPlace: options.inPlace });
    for (const v of result.violations) violations.add(fields.params + v.path, v.description);
    // Defaults come from a registered document, whose defaults were checked
    // as params are (CreateParamsSchemaVersion): only the size limit can be
    // newly broken.
    if (result.violations.length === 0 && compiled.fillsDefaults) {
      const bytes = Buffer.byteLength(JSON.stringify(result.params));
      if (bytes > PARAMS_MAX_BYTES) violations.add(fields.params, `must be at most ${PARAMS_MAX_BYTES} bytes as JSON with the schema's defaults, got ${bytes}`);
    }
    return result.params;
  }
}
