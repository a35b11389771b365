"use client";

import { useRouter } from "next/navigation";
import { useId, useState, type FormEvent } from "react";
import { searchHref, type Filters } from "@/lib/filters";
import { KNOWN_CITIES } from "@/lib/types";

function readWholeDollars(raw: FormDataEntryValue | null): number | null | "invalid" {
  const s = String(raw ?? "").trim().replace(/^\$/, "").replace(/,/g, "");
  if (s === "") return null;
  return /^\d{1,13}$/.test(s) ? Number(s) : "invalid";
}

// The filter form.  Its fields start from the URL; submitting writes the URL
// (a new history entry), which the results follow.  The parent remounts it
// (key) when the URL changes, e.g. on back/forward.
export function SearchForm({ filters }: { filters: Filters }) {
  const router = useRouter();
  const id = useId();
  const [problem, setProblem] = useState<string | null>(null);

  function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const fd = new FormData(e.currentTarget);
    const minPrice = readWholeDollars(fd.get("min_price"));
    const maxPrice = readWholeDollars(fd.get("max_price"));
    if (minPrice === "invalid" || maxPrice === "invalid") {
      setProblem("Prices are whole dollar amounts, such as 450000.");
      return;
    }
    if (minPrice != null && maxPrice != null && minPrice > maxPrice) {
      setProblem("The minimum price is above the maximum price.");
      return;
    }
    setProblem(null);
    const beds = String(fd.get("min_bedrooms") ?? "");
    const city = String(fd.get("city") ?? "").trim();
    router.push(
      searchHref({
        ...filters,
        city: city || null,
        minPrice,
        maxPrice,
        minBedrooms: beds === "" ? null : Number(beds),
        page: 1,
      }),
    );
  }

  return (
    <form className="search-form" role="search" aria-label="Search homes" onSubmit={onSubmit} noValidate>
      <div className="field field-city">
        <label htmlFor={`${id}-city`}>City</label>
        <input
          id={`${id}-city`}
          name="city"
          type="text"
          list={`${id}-cities`}
          defaultValue={filters.city ?? ""}
          placeholder="Any city"
          autoComplete="off"
          maxLength={100}
        />
        <datalist id={`${id}-cities`}>
          {KNOWN_CITIES.map((c) => (
            <option key={c} value={c} />
          ))}
        </datalist>
      </div>
      <div className="field">
        <label htmlFor={`${id}-min`}>Min price ($)</label>
        <input
          id={`${id}-min`}
          name="min_price"
          type="text"
          inputMode="numeric"
          defaultValue={filters.minPrice ?? ""}
          placeholder="No min"
          aria-invalid={problem ? true : undefined}
          aria-describedby={problem ? `${id}-problem` : undefined}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-max`}>Max price ($)</label>
        <input
          id={`${id}-max`}
          name="max_price"
          type="text"
          inputMode="numeric"
          defaultValue={filters.maxPrice ?? ""}
          placeholder="No max"
          aria-invalid={problem ? true : undefined}
          aria-describedby={problem ? `${id}-problem` : undefined}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-beds`}>Bedrooms</label>
        <select id={`${id}-beds`} name="min_bedrooms" defaultValue={filters.minBedrooms ?? ""}>
          <option value="">Any</option>
          {[1, 2, 3, 4, 5].map((n) => (
            <option key={n} value={n}>
              {n}+
            </option>
          ))}
          {filters.minBedrooms != null && filters.minBedrooms > 5 ? (
            <option value={filters.minBedrooms}>{filters.minBedrooms}+</option>
          ) : null}
        </select>
      </div>
      <div className="field field-submit">
        <button type="submit" className="btn btn-primary btn-block">
          Search
        </button>
      </div>
      {problem ? (
        <p id={`${id}-problem`} className="form-problem" role="alert">
          {problem}
        </p>
      ) : null}
    </form>
  );
}
