/**
 * The gateway.yaml of a bundle. Written as text, not through a YAML library, because its
 * value is in the comments: a technician adds the meters by uncommenting the example bus.
 * The schema it must satisfy is gateway/src/config/schema.ts (`edgemeter-gateway check-config`).
 */
export interface SkeletonOptions {
  gatewayId: string;
  brokerUrl: string;
  protocolVersion: 4 | 5;
  files: { key: string; cert: string; ca: string; passwordHash: string };
}

export function gatewayConfigSkeleton(options: SkeletonOptions): string {
  const q = (value: string) => JSON.stringify(value);
  return [
    `# edgemeter gateway ${options.gatewayId}: written by \`edgemeter-provision bundle\`.`,
    "# Copy this folder to /etc/edgemeter/ on the SD card (the systemd unit's ConfigurationDirectory).",
    "# Relative paths resolve against this file's folder. Reference: gateway/README.md.",
    `gatewayId: ${options.gatewayId}`,
    "# The systemd unit's StateDirectory: the outbox (SQLite) lives here.",
    "dataDir: /var/lib/edgemeter",
    "uplink:",
    "  kind: mqtt",
    `  url: ${q(options.brokerUrl)}`,
    `  protocolVersion: ${options.protocolVersion}`,
    `  caFile: ${q(options.files.ca)}`,
    `  certFile: ${q(options.files.cert)}`,
    `  keyFile: ${q(options.files.key)}`,
    "status:",
    "  port: 8080",
    "  # Only the scrypt hash of the technician password; the password itself is nowhere on the card.",
    `  passwordHashFile: ${q(options.files.passwordHash)}`,
    "buses:",
    "  # Add the meters wired to this gateway: uncomment the example below and set the adapter path",
    "  # (a /dev/serial/by-id/ path survives re-plugging), the serial settings from the meters' menus,",
    "  # each meter's Modbus unit id and profile (shipped profiles: hardware/profiles/). Then check it:",
    "  # edgemeter-gateway check-config --config /etc/edgemeter/gateway.yaml",
    "  #- id: rs485",
    "  #  transport: rtu",
    "  #  path: /dev/ttyUSB0",
    "  #  baudRate: 9600",
    "  #  parity: none",
    "  #  meters:",
    "  #    - id: m-1",
    "  #      unitId: 1",
    "  #      profile: sdm630",
    "",
  ].join("\n");
}
