import type { DescMessage, MessageShape } from "@bufbuild/protobuf";

/** Writes a message in the protobuf binary format: the same bytes as `toBinary`. */
export type Encoder<Desc extends DescMessage> = (message: MessageShape<Desc>) => Uint8Array;

/**
 * Reads a message from the protobuf binary format, as `fromBinary` would;
 * undefined for input it leaves to `fromBinary` (and to its errors).
 */
export type Decoder<Desc extends DescMessage> = (bytes: Uint8Array) => MessageShape<Desc> | undefined;

type CodecOf<Kind extends "encoder" | "decoder", Desc extends DescMessage> = Kind extends "encoder" ? Encoder<Desc> : Decoder<Desc>;

/**
 * Hand-written codecs by message, each bound to its descriptor: `add` takes
 * only a function of that descriptor's own message type, so a codec cannot
 * be registered for another schema (a plain Map of `(message: never) =>
 * Uint8Array` took any).
 */
export class CodecMap<Kind extends "encoder" | "decoder"> {
  private readonly byMessage = new Map<DescMessage, unknown>();

  add<Desc extends DescMessage>(desc: Desc, codec: CodecOf<Kind, Desc>): this {
    this.byMessage.set(desc, codec);
    return this;
  }

  get<Desc extends DescMessage>(desc: Desc): CodecOf<Kind, Desc> | undefined {
    return this.byMessage.get(desc) as CodecOf<Kind, Desc> | undefined;
  }
}

export const encoderMap = () => new CodecMap<"encoder">();
export const decoderMap = () => new CodecMap<"decoder">();
