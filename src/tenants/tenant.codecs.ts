import { CreateTenantRequestSchema, ListTenantsResponseSchema, TenantSchema } from "../../gen/tenancy/v1/tenant_pb.js";
import { decoderMap, encoderMap } from "../rpc/codecs.js";
import { decodeCreateTenantRequest } from "./tenant.decoder.js";
import { encodeListTenantsResponse, encodeTenant } from "./tenant.encoder.js";

/**
 * The hand-written codecs of the tenant messages, by descriptor (used on the
 * gRPC fast path; test/unit/tenant-codecs-schema.test.ts checks that they
 * know every field of their messages).
 */
export const tenantEncoders = () => encoderMap().add(TenantSchema, encodeTenant).add(ListTenantsResponseSchema, encodeListTenantsResponse);

export const tenantDecoders = () => decoderMap().add(CreateTenantRequestSchema, decodeCreateTenantRequest);
