import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { routeDoc } from "../routeDocs.js";

/** Liveness for load balancers and systemd: public, touches nothing. */
export function registerHealthRoutes(app: FastifyInstance): void {
  app.get(
    "/health",
    {
      config: { public: true },
      ...routeDoc({
        tags: ["health"],
        summary: "Liveness (no API key needed)",
        response: z.object({ status: z.literal("ok") }),
      }),
    },
    async () => ({ status: "ok" }),
  );
}
