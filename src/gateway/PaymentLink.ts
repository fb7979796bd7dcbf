/**
 * The gateway's leg on the payment side, over MQTT (two-way mode): crossings
 * published with QoS 2 through the SQLite store (exactly once into the
 * broker across gateway kills), department deliveries with QoS 1, and the
 * one subscription that may bring anything back: the departments' acks.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { SqliteMqttStore } from './SqliteMqttStore.js';
import type { StoreThread } from './StoreThread.js';

export interface PaymentSide {
  /** Resolves once the crossing is handed over for good (for MQTT: PUBCOMP) */
  publishCrossing(gatewaySeq: number, topic: string, payload: Uint8Array): Promise<void>;
  /** A department delivery; resolves when the far side's broker has it */
  publishDelivery(topic: string, payload: Uint8Array): Promise<void>;
  /** Whether acks can come back at all (false for the diode) */
  readonly returnLeg: boolean;
  onMessage(listener: (topic: string, payload: Uint8Array) => void): void;
  connected(): boolean;
  close(): Promise<void>;
}

export interface MqttLegOptions {
  readonly url: string;
  readonly clientId: string;
  readonly subscriptions: readonly string[];
  /** Packets in this store survive a restart (payment leg); the hospital leg uses memory */
  readonly store?: SqliteMqttStore;
  readonly connectTimeoutMs?: number;
}

export function connectLeg(options: MqttLegOptions): MqttClient {
  const client = mqtt.connect(options.url, {
    clientId: options.clientId,
    clean: false,
    protocolVersion: 4,
    reconnectPeriod: 500,
    connectTimeout: options.connectTimeoutMs ?? 5_000,
    keepalive: 30,
    ...(options.store ? { outgoingStore: options.store as never } : {}),
  });
  client.on('connect', () => {
    if (options.subscriptions.length > 0) client.subscribe([...options.subscriptions], { qos: 1 });
  });
  // errors are reconnected; the gateway's stats show the link down
  client.on('error', () => undefined);
  return client;
}

export class MqttPaymentLink implements PaymentSide {
  readonly returnLeg = true;
  private readonly client: MqttClient;
  private readonly store: SqliteMqttStore;

  constructor(thread: StoreThread, options: { url: string; clientId: string; subscriptions: readonly string[] }) {
    this.store = new SqliteMqttStore(thread);
    this.client = connectLeg({ ...options, store: this.store });
  }

  publishCrossing(gatewaySeq: number, topic: string, payload: Uint8Array): Promise<void> {
    this.store.expectCrossing(payload, gatewaySeq);
    return new Promise((resolve, reject) => {
      this.client.publish(topic, Buffer.from(payload), { qos: 2 }, (err) => (err ? reject(err) : resolve()));
    });
  }

  publishDelivery(topic: string, payload: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.publish(topic, Buffer.from(payload), { qos: 1 }, (err) => (err ? reject(err) : resolve()));
    });
  }

  onMessage(listener: (topic: string, payload: Uint8Array) => void): void {
    this.client.on('message', (topic, payload) => listener(topic, payload));
  }

  connected(): boolean {
    return this.client.connected;
  }

  async close(): Promise<void> {
    await this.client.endAsync(false);
  }
}
