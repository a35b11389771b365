"use client";

import { useId, useState } from "react";
import { decodeToken } from "@/lib/token";

function describeExpiry(exp: number | null, now: number): string {
  if (exp == null) return "does not expire";
  const s = Math.round(exp - now / 1000);
  if (s <= 0) return "has expired";
  if (s < 120) return `expires in ${s} seconds`;
  if (s < 7200) return `expires in ${Math.round(s / 60)} minutes`;
  if (s < 172800) return `expires in ${Math.round(s / 3600)} hours`;
  return `expires in ${Math.round(s / 86400)} days`;
}

// The editor's token: pasted once, kept in localStorage by the parent.
export function TokenPanel({ token, onChange }: { token: string; onChange: (t: string) => void }) {
  const id = useId();
  const [draft, setDraft] = useState("");
  const [editing, setEditing] = useState(false);
  const info = token ? decodeToken(token) : null;
  const showForm = !token || editing;

  return (
    <section className="panel token-panel" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`} className="panel-title">
        Editor token
      </h2>
      {token ? (
        <p className="token-status" role="status">
          {info ? (
            <>
              A token for role <code>{info.role ?? "(none)"}</code> is saved in this browser; it{" "}
              {describeExpiry(info.exp, Date.now())}.
              {info.role !== "web_editor" ? (
                <span className="warn-text"> Only a token for role web_editor may edit listings.</span>
              ) : null}
              {info.expired ? <span className="warn-text"> Paste a fresh one.</span> : null}
            </>
          ) : (
            <span className="warn-text">The saved token is not a JWT.</span>
          )}
        </p>
      ) : (
        <p className="muted">
          Editing needs a token (a JWT for role <code>web_editor</code>). <code>make demo</code> prints one. It is kept in
          this browser only.
        </p>
      )}
      {showForm ? (
        <form
          className="token-form"
          onSubmit={(e) => {
            e.preventDefault();
            const t = draft.trim();
            if (t) {
              onChange(t);
              setDraft("");
              setEditing(false);
            }
          }}
        >
          <label htmlFor={`${id}-token`}>Paste the token</label>
          <textarea
            id={`${id}-token`}
            name="token"
            rows={3}
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            spellCheck={false}
            autoComplete="off"
            placeholder="eyJhbGciOiJIUzI1NiIs…"
            aria-describedby={draft.trim() && !decodeToken(draft) ? `${id}-bad` : undefined}
          />
          {draft.trim() && !decodeToken(draft) ? (
            <p id={`${id}-bad`} className="warn-text small">
              This does not look like a JWT (three base64url parts separated by dots).
            </p>
          ) : null}
          <div className="button-row">
            <button type="submit" className="btn btn-primary" disabled={!draft.trim()}>
              Save token
            </button>
            {token ? (
              <button type="button" className="btn" onClick={() => setEditing(false)}>
                Cancel
              </button>
            ) : null}
          </div>
        </form>
      ) : (
        <div className="button-row">
          <button type="button" className="btn" onClick={() => setEditing(true)}>
            Replace token
          </button>
          <button type="button" className="btn btn-danger-outline" onClick={() => onChange("")}>
            Forget token
          </button>
        </div>
      )}
    </section>
  );
}
