import { create, type DescFile } from "@bufbuild/protobuf";
import { serviceRegistration, type ServiceRegistration } from "../rpc/rpc-handler.js";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ReflectionIndex, type ReflectionRequest } from "./reflection.service.js";

/**
 * grpc.reflection.v1 and v1alpha ServerReflection, answering from the
 * descriptors that protobuf-es embeds in the generated code, so grpcurl
 * and `buf curl` work without the .proto files. Both versions are served:
 * clients try v1 first, but older ones (and some GUIs) only speak v1alpha.
 *
 * `files` are the files declaring the services the server offers; their
 * imports are found by walking `dependencies`.
 */
export function reflectionServices(files: readonly DescFile[]): ServiceRegistration[] {
  const index = new ReflectionIndex(files);
  return [
    serviceRegistration(v1.ServerReflection, {
      async *serverReflectionInfo(requests) {
        // One response per request, in order, and the stream stays open after
        // an error_response: clients ask many questions on one stream.
        for await (const request of requests) {
          yield create(v1.ServerReflectionResponseSchema, respond(index, request));
        }
      },
    }),
    serviceRegistration(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          yield create(v1alpha.ServerReflectionResponseSchema, respond(index, request));
        }
      },
    }),
  ];
}

/** The version-independent fields of a response; the spec asks to echo the host and the request. */
function respond<R extends { host: string; messageRequest: ReflectionRequest }>(index: ReflectionIndex, request: R) {
  return { validHost: request.host, originalRequest: request, messageResponse: index.answer(request.messageRequest) };
}
