import { describe, expect, it } from "vitest";
import { decodeToken } from "@/lib/token";

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (claims: unknown) => `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}.c2lnbmF0dXJl`;

describe("decodeToken", () => {
  it("reads role and expiry", () => {
    const now = Date.UTC(2026, 0, 1);
    expect(decodeToken(jwt({ role: "web_editor", exp: now / 1000 + 3600 }), now)).toEqual({
      role: "web_editor",
      exp: now / 1000 + 3600,
      expired: false,
    });
    expect(decodeToken(jwt({ role: "web_editor", exp: now / 1000 - 1 }), now)?.expired).toBe(true);
    expect(decodeToken(jwt({ role: "web_anon" }), now)).toEqual({ role: "web_anon", exp: null, expired: false });
  });

  it("reads non-ASCII claims", () => {
    expect(decodeToken(jwt({ role: "rédacteur" }))?.role).toBe("rédacteur");
  });

  it("refuses what is not a JWT", () => {
    for (const bad of ["", "abc", "a.b", "a.b.c.d", "a.%%%.c", `x.${Buffer.from("not json").toString("base64url")}.y`]) {
      expect(decodeToken(bad)).toBeNull();
    }
  });
});
