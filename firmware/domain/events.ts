/**
 * The box's typed events. Protocol servers emit them; the timeline, MQTT and the UI
 * subscribe. Every event carries `ts` (ISO 8601) and, where known, the machine's MAC.
 */
export interface BaseEvent {
  ts: string;
  mac?: string;
}

export interface ServiceEvent extends BaseEvent {
  service: string;
  state: 'started' | 'stopped' | 'failed';
  detail?: string;
}

/** Open map: each protocol module adds its own event types by declaration merging of this interface's users. */
export interface BoxEvents extends Record<string, BaseEvent> {
  'service.state': ServiceEvent;
}
