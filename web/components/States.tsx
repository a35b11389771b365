"use client";

import Link from "next/link";
import type { ReactNode } from "react";
import { ApiError } from "@/lib/api";

// What to tell a person about a failed request.
export function describeError(error: unknown): { title: string; message: string; detail: string | null } {
  if (error instanceof ApiError) {
    if (error.unreachable) {
      return {
        title: "The listing service is not responding",
        message: "We could not reach the server. This is usually temporary — try again in a moment.",
        detail: error.status ? `HTTP ${error.status}` : null,
      };
    }
    if (error.status === 400) {
      return { title: "These filters cannot be used", message: error.message, detail: error.hint };
    }
    return {
      title: error.status >= 500 ? "Something went wrong on the server" : "The request failed",
      message: error.message,
      detail: [error.code, error.details, error.hint].filter(Boolean).join(" · ") || null,
    };
  }
  return { title: "Something went wrong", message: error instanceof Error ? error.message : String(error), detail: null };
}

export function ErrorState({ error, onRetry, retrying }: { error: unknown; onRetry?: () => void; retrying?: boolean }) {
  const d = describeError(error);
  return (
    <div className="state state-error" role="alert">
      <svg aria-hidden="true" viewBox="0 0 24 24" width="32" height="32" className="state-icon">
        <path d="M12 2 1 21h22L12 2zm0 6 .01 0M11 10h2v5h-2zm0 7h2v2h-2z" fill="currentColor" />
      </svg>
      <div>
        <h2 className="state-title">{d.title}</h2>
        <p>{d.message}</p>
        {d.detail ? <p className="muted small">{d.detail}</p> : null}
        {onRetry ? (
          <button type="button" className="btn btn-primary" onClick={onRetry} disabled={retrying}>
            {retrying ? "Retrying…" : "Try again"}
          </button>
        ) : null}
      </div>
    </div>
  );
}

// Shown above data that could not be refreshed: the page stays usable.
export function StaleNotice({ error, onRetry, retrying }: { error: unknown; onRetry: () => void; retrying?: boolean }) {
  const d = describeError(error);
  return (
    <div className="notice notice-warn" role="alert">
      <span>
        <strong>Could not refresh.</strong> {d.message} Showing what was loaded before.
      </span>
      <button type="button" className="btn btn-small" onClick={onRetry} disabled={retrying}>
        {retrying ? "Retrying…" : "Try again"}
      </button>
    </div>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <h2 className="state-title">{title}</h2>
      {children}
    </div>
  );
}

export function NotFound({ what, backHref = "/", backLabel = "Back to search" }: { what: string; backHref?: string; backLabel?: string }) {
  return (
    <div className="state state-empty" role="status">
      <h2 className="state-title">{what}</h2>
      <p>It may have been removed, or the link is mistyped.</p>
      <Link className="btn" href={backHref}>
        {backLabel}
      </Link>
    </div>
  );
}

export function Spinner({ label = "Loading" }: { label?: string }) {
  return (
    <span className="spinner-wrap" role="status">
      <span className="spinner" aria-hidden="true" />
      <span className="visually-hidden">{label}</span>
    </span>
  );
}

export function CardSkeletons({ count = 8 }: { count?: number }) {
  return (
    <ul className="card-grid" aria-hidden="true">
      {Array.from({ length: count }, (_, i) => (
        <li key={i} className="card skeleton-card">
          <div className="skeleton skeleton-media" />
          <div className="card-body">
            <div className="skeleton skeleton-line wide" />
            <div className="skeleton skeleton-line" />
            <div className="skeleton skeleton-line short" />
          </div>
        </li>
      ))}
    </ul>
  );
}
