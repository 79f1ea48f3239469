import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ParamsSchemaSchema, type ParamsSchema } from "../../gen/tenancy/v1/params_schema_pb.js";
import { formatBinding } from "./params-schema.binding.js";
import type { StoredParamsSchema } from "./params-schema.repository.js";

export function toParamsSchemaMessage(stored: StoredParamsSchema): ParamsSchema {
  return create(ParamsSchemaSchema, {
    name: stored.name,
    version: stored.version,
    paramsSchema: formatBinding(stored),
    schema: stored.schema as JsonObject | undefined,
    createTime: timestampFromDate(stored.createdAt),
    createdBy: stored.createdBy ?? "",
  });
}
