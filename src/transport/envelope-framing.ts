// One envelope on the wire: protobuf-encoded, then length-framed
// (wire/frame-decoder.ts reads it back). Every carrier kind carries these.

import { frameBytes } from '../wire/frame-decoder.ts';
import { envelopeCodec, type Envelope } from '../wire/messages.ts';

/** Encode and frame one envelope. */
export function frameEnvelope(envelope: Envelope): Buffer {
  return frameBytes(envelopeCodec.encode(envelope));
}
