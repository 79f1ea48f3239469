import { toBinary, type DescEnum, type DescExtension, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";

/**
 * The `message_request` oneof of a ServerReflectionRequest. v1 and v1alpha
 * declare the same fields, so one shape serves both versions.
 */
export type ReflectionRequest =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** The `message_response` oneof of a ServerReflectionResponse, in either version. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * Answers server reflection requests from the descriptors that protobuf-es
 * embeds in the generated code. Everything is indexed once, up front: the
 * descriptors never change while the process runs, and reflection clients
 * (grpcurl, buf curl, Postman) ask many questions on one stream.
 */
export class ReflectionIndex {
  /** Full names of the services the server offers, in the order given. */
  private readonly services: string[] = [];
  /** Every known file, by its path ("tenancy/v1/tenant.proto"), imports included. */
  private readonly filesByName = new Map<string, DescFile>();
  /** Serialized FileDescriptorProto of each file, by path, encoded once. */
  private readonly encoded = new Map<string, Uint8Array>();
  /** Fully-qualified symbol (no leading dot) to the file declaring it. */
  private readonly symbols = new Map<string, DescFile>();
  /** Message full names, to tell "no extensions" from "no such type". */
  private readonly messages = new Set<string>();
  /** Extendee full name to the extensions declared for it, in any file. */
  private readonly extensions = new Map<string, DescExtension[]>();

  constructor(files: readonly DescFile[]) {
    for (const file of files) {
      for (const service of file.services) {
        if (!this.services.includes(service.typeName)) this.services.push(service.typeName);
      }
      this.addFile(file);
    }
  }

  answer(request: ReflectionRequest): ReflectionAnswer {
    switch (request.case) {
      case "listServices":
        // The request's value is unused: the spec only asks for "*".
        return { case: "listServicesResponse", value: { service: this.services.map((name) => ({ name })) } };
      case "fileByFilename": {
        const file = this.filesByName.get(request.value);
        return file ? this.withDependencies(file) : notFound(`file "${request.value}" not found`);
      }
      case "fileContainingSymbol": {
        const file = this.symbols.get(request.value);
        return file ? this.withDependencies(file) : notFound(`symbol "${request.value}" not found`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = request.value;
        const extension = this.extensions.get(containingType)?.find((ext) => ext.number === extensionNumber);
        return extension
          ? this.withDependencies(extension.file)
          : notFound(`extension ${extensionNumber} of "${containingType}" not found`);
      }
      case "allExtensionNumbersOfType": {
        const typeName = request.value;
        if (!this.messages.has(typeName)) return notFound(`message type "${typeName}" not found`);
        const numbers = (this.extensions.get(typeName) ?? []).map((ext) => ext.number);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: typeName, extensionNumber: numbers } };
      }
      case undefined:
        return {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "the request sets no message_request" },
        };
    }
  }

  /**
   * The file first, then everything it imports, transitively, each once:
   * clients read the first entry as the answer and need the rest to link it.
   */
  private withDependencies(file: DescFile): ReflectionAnswer {
    // By path, not by object: a file reached through two copies goes out once.
    const seen = new Map<string, Uint8Array>();
    const visit = (f: DescFile) => {
      const name = f.proto.name;
      if (seen.has(name)) return;
      seen.set(name, this.encoded.get(name) ?? encode(f));
      f.dependencies.forEach(visit);
    };
    visit(file);
    const fileDescriptorProto = [...seen.values()];
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto } };
  }

  private addFile(file: DescFile): void {
    const name = file.proto.name;
    // Two copies of a file (say, a well-known type bundled twice) describe
    // the same thing; the first one seen answers for both.
    if (this.filesByName.has(name)) return;
    this.filesByName.set(name, file);
    this.encoded.set(name, encode(file));
    file.dependencies.forEach((dep) => this.addFile(dep));

    const pkg = file.proto.package;
    for (const service of file.services) {
      this.addSymbol(service.typeName, file);
      for (const method of service.methods) this.addSymbol(`${service.typeName}.${method.name}`, file);
    }
    for (const message of file.messages) this.addMessage(message);
    for (const en of file.enums) this.addEnum(en, pkg);
    for (const extension of file.extensions) this.addExtension(extension);
  }

  private addMessage(message: DescMessage): void {
    this.addSymbol(message.typeName, message.file);
    this.messages.add(message.typeName);
    for (const field of message.fields) this.addSymbol(`${message.typeName}.${field.name}`, message.file);
    for (const oneof of message.oneofs) this.addSymbol(`${message.typeName}.${oneof.name}`, message.file);
    for (const nested of message.nestedMessages) this.addMessage(nested);
    // protobuf-es folds map entry messages into their map fields, but they
    // are nested messages in the descriptor clients receive, and protoc
    // resolves their names: index them from the proto.
    for (const entry of message.proto.nestedType) {
      if (!entry.options?.mapEntry) continue;
      const entryName = `${message.typeName}.${entry.name}`;
      this.addSymbol(entryName, message.file);
      this.messages.add(entryName);
      for (const field of entry.field) this.addSymbol(`${entryName}.${field.name}`, message.file);
    }
    for (const en of message.nestedEnums) this.addEnum(en, message.typeName);
    for (const extension of message.nestedExtensions) this.addExtension(extension);
  }

  /** `scope` is where the enum is declared: enum values are its siblings, not its children (C++ scoping). */
  private addEnum(en: DescEnum, scope: string): void {
    this.addSymbol(en.typeName, en.file);
    for (const value of en.values) this.addSymbol(scope ? `${scope}.${value.name}` : value.name, en.file);
  }

  private addExtension(extension: DescExtension): void {
    this.addSymbol(extension.typeName, extension.file);
    const extendee = extension.extendee.typeName;
    this.extensions.set(extendee, [...(this.extensions.get(extendee) ?? []), extension]);
  }

  private addSymbol(fullName: string, file: DescFile): void {
    if (!this.symbols.has(fullName)) this.symbols.set(fullName, file);
  }
}

function encode(file: DescFile): Uint8Array {
  return toBinary(FileDescriptorProtoSchema, file.proto);
}

function notFound(errorMessage: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } };
}
