import { isValidId, TOPIC_PREFIX } from "@edgemeter/shared";

/**
 * Who a broker client is, taken only from its verified client certificate (subject CN and OU,
 * as issued by the provisioning CLI): never from the MQTT username, which the client chooses.
 * - `gateway`: CN is the gatewayId; may publish only below `edgemeter/v1/gw/{CN}/`.
 * - `service`: a cloud service such as the ingest client; may subscribe to `edgemeter/v1/gw/…`.
 */
export interface ClientIdentity {
  role: "gateway" | "service";
  commonName: string;
}

export type AclDecision = { allowed: true } | { allowed: false; reason: string };

const ALLOWED: AclDecision = { allowed: true };
const deny = (reason: string): AclDecision => ({ allowed: false, reason });

const PREFIX_LEVELS = TOPIC_PREFIX.split("/");

/** The subject as Node's `getPeerCertificate()` returns it: a repeated attribute arrives as an array. */
export interface CertificateSubject {
  CN?: string | string[];
  OU?: string | string[];
}

/** The identity a certificate grants, or why it grants none. */
export function identityFromSubject(subject: CertificateSubject | undefined): ClientIdentity | { refused: string } {
  const commonName = subject?.CN;
  const unit = subject?.OU;
  if (typeof commonName !== "string" || commonName === "") return { refused: "certificate has no single subject CN" };
  if (typeof unit !== "string") return { refused: `certificate ${commonName} has no single subject OU` };
  switch (unit) {
    case "gateway":
      // The CN becomes a topic level: a CN with `/`, `+` or `#` could widen the gateway's root.
      if (!isValidId(commonName))
        return { refused: `gateway certificate CN ${JSON.stringify(commonName)} is not a valid id` };
      return { role: "gateway", commonName };
    case "service":
      return { role: "service", commonName };
    default:
      return { refused: `certificate ${commonName} has OU ${JSON.stringify(unit)}; expected gateway or service` };
  }
}

/**
 * The MQTT clientId a certificate may connect with. Aedes lets a new connection take over the
 * session of any connected client with the same id, so ids are tied to certificates:
 * a gateway's clientId is its CN; a service's is its CN or starts with `{CN}-`
 * (e.g. `cloud-ingest`, `cloud-ingest-2`), so it cannot take a gateway's session.
 */
export function mayConnectAs(identity: ClientIdentity, clientId: string): AclDecision {
  if (identity.role === "gateway") {
    return clientId === identity.commonName
      ? ALLOWED
      : deny(
          `gateway ${identity.commonName} must connect with clientId ${identity.commonName}, not ${JSON.stringify(clientId)}`,
        );
  }
  return clientId === identity.commonName || clientId.startsWith(`${identity.commonName}-`)
    ? ALLOWED
    : deny(`service ${identity.commonName} must use clientId ${identity.commonName} or ${identity.commonName}-…`);
}

/** True when `levels` begins with `edgemeter/v1/gw` and, if given, the gateway's id, all literal. */
function startsWithRoot(levels: readonly string[], gatewayId?: string): boolean {
  const root = gatewayId === undefined ? PREFIX_LEVELS : [...PREFIX_LEVELS, gatewayId];
  return root.every((level, i) => levels[i] === level);
}

export function mayPublish(identity: ClientIdentity, topic: string): AclDecision {
  if (identity.role === "service") return deny(`service ${identity.commonName} may not publish`);
  const levels = topic.split("/");
  if (startsWithRoot(levels, identity.commonName) && levels.length > PREFIX_LEVELS.length + 1) return ALLOWED;
  return deny(
    `gateway ${identity.commonName} may publish only below ${TOPIC_PREFIX}/${identity.commonName}/, not ${topic}`,
  );
}

/** `filter` has already passed Aedes' wildcard syntax check (`#` last, `+` a whole level). */
export function maySubscribe(identity: ClientIdentity, filter: string): AclDecision {
  if (filter.startsWith("$share/")) {
    // Aedes 1.2 speaks MQTT 3.1.1 and would treat this as a literal topic that never matches.
    return deny(
      "shared subscriptions ($share/…) are not supported by the embedded broker; subscribe to the plain topic",
    );
  }
  const levels = filter.split("/");
  if (identity.role === "gateway") {
    if (startsWithRoot(levels, identity.commonName) && levels.length > PREFIX_LEVELS.length + 1) return ALLOWED;
    return deny(
      `gateway ${identity.commonName} may subscribe only below ${TOPIC_PREFIX}/${identity.commonName}/, not ${filter}`,
    );
  }
  if (startsWithRoot(levels) && levels.length > PREFIX_LEVELS.length) return ALLOWED;
  return deny(`service ${identity.commonName} may subscribe only below ${TOPIC_PREFIX}/, not ${filter}`);
}
