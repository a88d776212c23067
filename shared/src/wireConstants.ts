/**
 * The v1 wire contract (DESIGN "Wire contract (v1)"). Every payload carries `v: 1`;
 * a v2 payload fails these schemas loudly instead of being half-understood.
 */
export const WIRE_VERSION = 1;

/** AWS IoT Core rejects MQTT messages above 128 KB; batches stay below this. */
export const MAX_PAYLOAD_BYTES = 128 * 1024;
