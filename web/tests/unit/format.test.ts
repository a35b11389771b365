import { describe, expect, it } from "vitest";
import {
  centsToDollarsInput,
  describeServerTiming,
  formatArea,
  formatBathrooms,
  formatBedrooms,
  formatDate,
  formatMs,
  formatPrice,
  formatPriceCompact,
  formatPriceWhole,
  formatRatio,
  formatStatus,
  parseDollarsToCents,
  parseServerTiming,
} from "@/lib/format";

describe("prices", () => {
  it("formats cents as dollars", () => {
    expect(formatPrice(89900000)).toBe("$899,000");
    expect(formatPrice(12345)).toBe("$123.45");
    expect(formatPrice(5)).toBe("$0.05");
    expect(formatPrice(0)).toBe("$0");
    expect(formatPrice(100)).toBe("$1");
    expect(formatPrice(123456789012)).toBe("$1,234,567,890.12");
  });

  it("shows a dash for a missing price", () => {
    expect(formatPrice(null)).toBe("—");
    expect(formatPrice(undefined)).toBe("—");
    expect(formatPrice("abc")).toBe("—");
  });

  it("accepts numeric strings (bigint as text)", () => {
    expect(formatPrice("89900000")).toBe("$899,000");
  });

  it("rounds statistics to whole dollars", () => {
    expect(formatPriceWhole(45672650)).toBe("$456,727");
    expect(formatPriceWhole(45672649)).toBe("$456,726");
    expect(formatPriceWhole(null)).toBe("—");
  });

  it("has a compact form", () => {
    expect(formatPriceCompact(89900000)).toBe("$899K");
    expect(formatPriceCompact(125000000)).toBe("$1.3M");
  });

  it("parses typed amounts to cents", () => {
    expect(parseDollarsToCents("899000")).toBe(89900000);
    expect(parseDollarsToCents("$899,000")).toBe(89900000);
    expect(parseDollarsToCents(" 899000.5 ")).toBe(89900050);
    expect(parseDollarsToCents("899000.05")).toBe(89900005);
    expect(parseDollarsToCents("0")).toBe(0);
    for (const bad of ["", "-5", "1.234", "abc", "1e6", "12 000"]) expect(parseDollarsToCents(bad)).toBeNull();
  });

  it("writes cents back as an input value", () => {
    expect(centsToDollarsInput(89900000)).toBe("899000");
    expect(centsToDollarsInput(89900050)).toBe("899000.50");
    expect(centsToDollarsInput(5)).toBe("0.05");
    for (const c of [0, 1, 99, 100, 123456, 89900005]) expect(parseDollarsToCents(centsToDollarsInput(c))).toBe(c);
  });
});

describe("facts", () => {
  it("formats rooms, area, dates and status", () => {
    expect(formatBedrooms(0)).toBe("Studio");
    expect(formatBedrooms(1)).toBe("1 bed");
    expect(formatBedrooms(3)).toBe("3 beds");
    expect(formatBathrooms(1)).toBe("1 bath");
    expect(formatBathrooms(1.5)).toBe("1.5 baths");
    expect(formatBathrooms("2.0")).toBe("2 baths");
    expect(formatArea(1200)).toBe("1,200 m²");
    expect(formatDate("2026-05-30T11:02:00+00:00")).toBe("May 30, 2026");
    expect(formatDate("nope")).toBe("—");
    expect(formatStatus("pending")).toBe("Sale pending");
    expect(formatRatio(0.8123)).toBe("81.2%");
    expect(formatRatio("0.5000")).toBe("50.0%");
    expect(formatRatio(null)).toBe("—");
  });

  it("formats durations", () => {
    expect(formatMs(0.042)).toBe("0.042 ms");
    expect(formatMs(12.34)).toBe("12.3 ms");
    expect(formatMs(250.4)).toBe("250 ms");
    expect(formatMs(null)).toBe("—");
  });
});

describe("Server-Timing", () => {
  it("parses the cache metric", () => {
    expect(parseServerTiming('cache;desc="l1";dur=0.042')).toEqual([{ name: "cache", desc: "l1", dur: 0.042 }]);
  });

  it("parses several metrics, quoted commas and missing parts", () => {
    expect(parseServerTiming('cache;desc="a, b";dur=1, db;dur=3.5, total')).toEqual([
      { name: "cache", desc: "a, b", dur: 1 },
      { name: "db", desc: null, dur: 3.5 },
      { name: "total", desc: null, dur: null },
    ]);
    expect(parseServerTiming(null)).toEqual([]);
    expect(parseServerTiming("")).toEqual([]);
  });

  it("describes it briefly", () => {
    expect(describeServerTiming('cache;desc="l1";dur=0.042')).toBe("l1 0.042 ms");
    expect(describeServerTiming('cache;desc="miss";dur=12.5')).toBe("miss 12.5 ms");
    expect(describeServerTiming(null)).toBe("—");
  });
});
