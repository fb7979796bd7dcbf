/**
 * The one way card logic reaches a card: transmit a command APDU, get the
 * response APDU (data + status word). The simulated reader, the PC/SC backend
 * and the serial backend each provide one.
 *
 * A channel rejects with TallyError('CARD_REMOVED') when the card left the
 * reader, and with a 5xxx code when the reader itself failed.
 */
export interface ApduChannel {
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
}

/**
 * A card as a reader sees it: powered on with an ATR, answers APDUs
 * synchronously. SimulatedCard implements it; the virtual card for vpcd and
 * the simulated microcontroller serve one over their wires.
 */
export interface SmartCard {
  powerOn(): Uint8Array;
  powerOff(): void;
  transmit(apdu: Uint8Array): Uint8Array;
}

/** A channel straight to a card in this process (an issuing-station slot, a simulated card) */
export function directChannel(card: SmartCard): ApduChannel {
  card.powerOn();
  return { transmit: async (apdu) => card.transmit(apdu) };
}
