/**
 * Test helpers for other workspaces' tests (`@edgemeter/gateway/testing`): a fake Clock
 * and a private Mosquitto with an ACL. Test-only: nothing in a product path imports this.
 */
export { FakeClock, settle } from "../time/fakeClock.js";
export { mosquittoBinary, startMosquitto, type TestBroker } from "./mosquitto.js";
