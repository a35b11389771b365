import { describe, expect, it } from "vitest";
import { compareLsn, maxLsn, normalizeLsn } from "@/lib/lsn";

describe("LSNs", () => {
  it("normalizes what pg_lsn accepts, refuses the rest", () => {
    expect(normalizeLsn("16/B374D848")).toBe("16/B374D848");
    expect(normalizeLsn(" 0/0001a2b ")).toBe("0/1A2B");
    expect(normalizeLsn("FFFFFFFF/FFFFFFFF")).toBe("FFFFFFFF/FFFFFFFF");
    for (const bad of ["", "0", "0/", "/1", "1/2/3", "G/1", "100000000/0", "0/-1", "0x1/2", null, undefined]) {
      expect(normalizeLsn(bad as string | null | undefined)).toBeNull();
    }
  });

  it("compares by the high half, then the low half, numerically", () => {
    expect(compareLsn("0/10", "0/9")).toBeGreaterThan(0);
    expect(compareLsn("1/0", "0/FFFFFFFF")).toBeGreaterThan(0);
    expect(compareLsn("0/A", "0/a")).toBe(0);
    expect(compareLsn("0/1", "0/2")).toBeLessThan(0);
    expect(() => compareLsn("x", "0/1")).toThrow(/not an LSN/);
  });

  it("keeps the later of two, ignoring missing or malformed ones", () => {
    expect(maxLsn("0/10", "0/9")).toBe("0/10");
    expect(maxLsn("0/9", "1/0")).toBe("1/0");
    expect(maxLsn(null, "0/1")).toBe("0/1");
    expect(maxLsn("0/1", "junk")).toBe("0/1");
    expect(maxLsn(null, undefined)).toBeNull();
  });
});
