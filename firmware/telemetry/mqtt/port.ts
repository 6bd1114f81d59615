/**
 * The one port the rest of the firmware uses to talk MQTT. Implemented by
 * `MqttLink` (site broker or the embedded broker); tests may use a fake.
 */

/** A message received on a subscription. */
export interface MqttMessage {
  topic: string;
  payload: Buffer;
  /**
   * Authenticated publisher (embedded broker: its username; site broker: v5
   * user property "identity" or the client id if the site broker is trusted).
   */
  identity?: string;
  properties?: {
    responseTopic?: string;
    correlationData?: Buffer;
    userProperties?: Record<string, string | string[]>;
  };
}

export interface PublishOptions {
  retain?: boolean;
  /** Default 1. */
  qos?: 0 | 1;
  properties?: {
    correlationData?: Buffer;
    userProperties?: Record<string, string>;
  };
  /**
   * Keep a non-retained message in the outage buffer while disconnected (default true).
   * False for periodic data that is stale by the time the broker is back (health).
   */
  buffer?: boolean;
}

export interface MqttPort {
  /** `bootbox/<boxId>/` */
  readonly root: string;
  /** JSON-serialises payload (adds `ts` ISO 8601 when absent); never throws; buffers (bounded) while disconnected. */
  publish(topic: string, payload: unknown, opts?: PublishOptions): void;
  /** Handler errors are logged, never fatal. Re-subscribed after reconnect. Returns unsubscribe. */
  subscribe(filter: string, handler: (msg: MqttMessage) => void): () => void;
  readonly connected: boolean;
  /**
   * Called after each (re)connect, once the online status and the retained topics are
   * republished and before buffered events are flushed. Returns unsubscribe.
   */
  onConnect?(fn: () => void): () => void;
}

/**
 * Subscriptions served from inside the embedded broker: every publish the broker
 * accepts, with the authenticated publisher as `identity` (MQTT 3.1.1 has no way to
 * carry it on the wire, so the box's own link does not subscribe over MQTT there).
 */
export interface InboundSource {
  subscribe(filter: string, handler: (msg: MqttMessage) => void): () => void;
}
