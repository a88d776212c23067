import { describe, expect, it } from "vitest";
import { stableJson } from "./canonicalJson.js";

/** The form bills were first hashed with (their content_sha256 must not change). */
const replacerForm = (value: unknown) =>
  JSON.stringify(value, (_key, inner) => {
    if (inner !== null && typeof inner === "object" && !Array.isArray(inner)) {
      return Object.fromEntries(Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)));
    }
    if (typeof inner === "number" && !Number.isFinite(inner)) return null;
    return inner;
  });

describe("stableJson (bill content hashing)", () => {
  const cases: [string, unknown][] = [
    ["nested objects out of order", { z: 1, a: { y: [3, 2, { d: 1, c: 2 }], b: "x" }, m: null }],
    [
      "array-index keys first, numerically",
      { b: 1, 10: "ten", 2: "two", "01": "not an index", a: 0, 4294967295: "too big" },
    ],
    [
      "undefined, functions and non-finite numbers",
      { u: undefined, f: () => 1, n: Number.NaN, i: [Infinity, undefined, -0] },
    ],
    ["strings that need escaping", { q: 'say "hi"\\', c: "tab\tnew\nline\u0001", e: "€ 😀", s: "\ud800 lone" }],
    ["toJSON and empty containers", { at: new Date(Date.UTC(2026, 9, 1)), o: {}, a: [], nested: [[], [{}]] }],
    [
      "a bill",
      {
        meterId: "m-1",
        lines: [{ kind: "energy", rate: 0.18, quantity: 91.78938325369973, amountMinor: 1652, tier: 0 }],
        dailyKwh: [6.154959029604129, 6.1549590296042425, 0],
        flags: [],
        opening: { atMs: 1790805600000, quality: 0, registerKwh: 1001.2220449468016 },
        estimated: false,
      },
    ],
  ];
  for (const [name, value] of cases) {
    it(`is byte-identical to the replacer form: ${name}`, () => {
      expect(stableJson(value)).toBe(replacerForm(value));
    });
  }

  it("sorts keys, so objects with the same members give the same bytes", () => {
    expect(stableJson({ b: 2, a: { d: 4, c: 3 } })).toBe('{"a":{"c":3,"d":4},"b":2}');
    expect(stableJson({ a: { c: 3, d: 4 }, b: 2 })).toBe(stableJson({ b: 2, a: { d: 4, c: 3 } }));
  });
});
