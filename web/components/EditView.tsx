"use client";

import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { useEffect, useId, useState, type FormEvent } from "react";
import useSWR from "swr";
import { ApiError } from "@/lib/api";
import { api } from "@/lib/client";
import { DEFAULT_FILTERS, UPDATE_LISTING_PATH, listingPath, parseId, searchHref } from "@/lib/filters";
import { centsToDollarsInput, formatPrice, parseDollarsToCents, STATUS_LABELS } from "@/lib/format";
import { revalidateNote } from "@/lib/messages";
import { useRevalidateAfterEdit } from "@/lib/revalidate";
import { readToken, writeToken } from "@/lib/token";
import { LISTING_STATUSES, type Listing, type ListingStatus, type ListingUpdate } from "@/lib/types";
import { useDocumentTitle } from "@/lib/useDocumentTitle";
import { ErrorState, NotFound, Spinner } from "./States";
import { TokenPanel } from "./TokenPanel";

type Outcome = { kind: "ok"; listing: Listing; changed: string[] } | { kind: "error"; title: string; message: string } | null;

function explainSaveError(e: unknown): { title: string; message: string } {
  if (e instanceof ApiError) {
    if (e.status === 401)
      return {
        title: "The server refused the token",
        message: `${e.message}${e.code ? ` (${e.code})` : ""}. Paste a fresh editor token.`,
      };
    if (e.status === 403) return { title: "Not allowed", message: "This token's role may not edit listings: it needs role web_editor." };
    if (e.status === 400) return { title: "The server refused a value", message: e.message };
    if (e.status === 404) return { title: "Listing not found", message: e.message };
    if (e.unreachable) return { title: "Not saved", message: "The server could not be reached. Nothing was changed; try again." };
    return { title: "Not saved", message: e.message };
  }
  return { title: "Not saved", message: e instanceof Error ? e.message : String(e) };
}

function EditForm({ listing, token }: { listing: Listing; token: string }) {
  const id = useId();
  const revalidate = useRevalidateAfterEdit();
  const [title, setTitle] = useState(listing.title);
  const [price, setPrice] = useState(centsToDollarsInput(listing.price_cents));
  const [status, setStatus] = useState<ListingStatus>(listing.status);
  const [description, setDescription] = useState(listing.description ?? "");
  const [saving, setSaving] = useState(false);
  const [outcome, setOutcome] = useState<Outcome>(null);
  const [priceProblem, setPriceProblem] = useState<string | null>(null);
  const [titleProblem, setTitleProblem] = useState<string | null>(null);

  async function onSubmit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const cents = parseDollarsToCents(price);
    setPriceProblem(cents == null ? "Enter an amount in dollars, such as 899000 or 899000.50." : null);
    setTitleProblem(title.trim() === "" ? "The title cannot be empty." : null);
    if (cents == null || title.trim() === "") return;

    const update: ListingUpdate = { id: listing.id };
    const changed: string[] = [];
    if (title.trim() !== listing.title) {
      update.title = title.trim();
      changed.push("title");
    }
    if (cents !== listing.price_cents) {
      update.price_cents = cents;
      changed.push("price");
    }
    if (status !== listing.status) {
      update.status = status;
      changed.push("status");
    }
    if (description !== (listing.description ?? "")) {
      update.description = description;
      changed.push("description");
    }
    if (changed.length === 0) {
      setOutcome({ kind: "error", title: "Nothing to save", message: "No field differs from the listing as it is." });
      return;
    }
    setSaving(true);
    setOutcome(null);
    try {
      const updated = await api.post<Listing>(UPDATE_LISTING_PATH, update, token);
      await revalidate(updated);
      setOutcome({ kind: "ok", listing: updated, changed });
    } catch (err) {
      setOutcome({ kind: "error", ...explainSaveError(err) });
    } finally {
      setSaving(false);
    }
  }

  return (
    <form className="panel edit-form" onSubmit={onSubmit} noValidate aria-busy={saving}>
      <h2 className="panel-title">Listing {listing.id}</h2>
      <div className="field">
        <label htmlFor={`${id}-title`}>Title</label>
        <input
          id={`${id}-title`}
          name="title"
          value={title}
          onChange={(e) => setTitle(e.target.value)}
          required
          aria-invalid={titleProblem ? true : undefined}
          aria-describedby={titleProblem ? `${id}-title-problem` : undefined}
        />
        {titleProblem ? (
          <p id={`${id}-title-problem`} className="form-problem">
            {titleProblem}
          </p>
        ) : null}
      </div>
      <div className="field-row">
        <div className="field">
          <label htmlFor={`${id}-price`}>Price (US dollars)</label>
          <input
            id={`${id}-price`}
            name="price"
            inputMode="decimal"
            value={price}
            onChange={(e) => setPrice(e.target.value)}
            aria-invalid={priceProblem ? true : undefined}
            aria-describedby={`${id}-price-help${priceProblem ? ` ${id}-price-problem` : ""}`}
          />
          <p id={`${id}-price-help`} className="muted small">
            Now {formatPrice(listing.price_cents)}
            {parseDollarsToCents(price) != null && parseDollarsToCents(price) !== listing.price_cents
              ? ` → ${formatPrice(parseDollarsToCents(price))}`
              : ""}
          </p>
          {priceProblem ? (
            <p id={`${id}-price-problem`} className="form-problem">
              {priceProblem}
            </p>
          ) : null}
        </div>
        <div className="field">
          <label htmlFor={`${id}-status`}>Status</label>
          <select id={`${id}-status`} name="status" value={status} onChange={(e) => setStatus(e.target.value as ListingStatus)}>
            {LISTING_STATUSES.map((s) => (
              <option key={s} value={s}>
                {STATUS_LABELS[s]}
              </option>
            ))}
          </select>
        </div>
      </div>
      <div className="field">
        <label htmlFor={`${id}-description`}>Description</label>
        <textarea
          id={`${id}-description`}
          name="description"
          rows={5}
          value={description}
          onChange={(e) => setDescription(e.target.value)}
        />
      </div>
      <div className="button-row">
        <button type="submit" className="btn btn-primary" disabled={saving || !token}>
          {saving ? "Saving…" : "Save changes"}
        </button>
        <Link className="btn" href={`/listing?id=${listing.id}`}>
          View listing
        </Link>
        {!token ? <span className="warn-text small">Save an editor token first.</span> : null}
      </div>
      <div aria-live="polite" className="outcome">
        {outcome?.kind === "ok" ? (
          <div className="notice notice-ok" role="status">
            <p>
              <strong>Saved.</strong> Changed {outcome.changed.join(", ")}; the price is now{" "}
              <strong data-testid="saved-price">{formatPrice(outcome.listing.price_cents)}</strong>.
            </p>
            <p className="small">{revalidateNote(outcome.listing.city)}</p>
            <p className="small">
              <Link href={`/listing?id=${outcome.listing.id}`}>See the listing</Link> ·{" "}
              <Link href={searchHref({ ...DEFAULT_FILTERS, city: outcome.listing.city })}>Homes in {outcome.listing.city}</Link> ·{" "}
              <Link href="/cache">Cache panel</Link>
            </p>
          </div>
        ) : outcome?.kind === "error" ? (
          <div className="notice notice-error" role="alert">
            <p>
              <strong>{outcome.title}.</strong> {outcome.message}
            </p>
          </div>
        ) : null}
      </div>
    </form>
  );
}

function ListingPicker() {
  const router = useRouter();
  const id = useId();
  return (
    <form
      className="panel inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        const v = parseId(String(new FormData(e.currentTarget).get("id") ?? ""));
        if (v) router.push(`/edit?id=${v}`);
      }}
    >
      <label htmlFor={`${id}-id`}>Listing ID</label>
      <input id={`${id}-id`} name="id" inputMode="numeric" pattern="[0-9]+" required />
      <button type="submit" className="btn btn-primary">
        Edit
      </button>
    </form>
  );
}

export function EditView() {
  const params = useSearchParams();
  const id = parseId(params.get("id"));
  const [token, setToken] = useState("");
  const [tokenLoaded, setTokenLoaded] = useState(false);
  useEffect(() => {
    setToken(readToken());
    setTokenLoaded(true);
  }, []);
  const { data, error, isValidating, mutate } = useSWR<Listing | null>(id ? listingPath(id) : null, {
    // The form edits what it loaded; do not swap it under the editor's hands.
    revalidateOnFocus: false,
  });
  useDocumentTitle(id ? `Edit listing ${id}` : "Editor");

  return (
    <div className="container page">
      <header className="page-header">
        <h1>{id ? `Edit listing ${id}` : "Editor"}</h1>
        <p className="muted">Change a listing&apos;s price, status or title; every page showing it updates.</p>
      </header>
      <div className="edit-layout">
        <div>
          {id == null ? (
            <ListingPicker />
          ) : (error instanceof ApiError && error.status === 404) || data === null ? (
            <NotFound what={`Listing ${id} does not exist`} backHref="/edit" backLabel="Edit another listing" />
          ) : error && !data ? (
            <ErrorState error={error} onRetry={() => mutate()} retrying={isValidating} />
          ) : !data ? (
            <Spinner label="Loading the listing" />
          ) : (
            <EditForm key={data.id} listing={data} token={token} />
          )}
        </div>
        {tokenLoaded ? (
          <TokenPanel
            token={token}
            onChange={(t) => {
              writeToken(t);
              setToken(t);
            }}
          />
        ) : null}
      </div>
    </div>
  );
}
