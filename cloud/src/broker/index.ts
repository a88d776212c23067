export { type EmbeddedBroker, type EmbeddedBrokerOptions, startEmbeddedBroker } from "./aedesBroker.js";
export { type AclDecision, type ClientIdentity, mayConnectAs, mayPublish, maySubscribe } from "./brokerAcl.js";
