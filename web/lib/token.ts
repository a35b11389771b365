// The editor's token (a JWT whose claim "role" is web_editor), pasted once
// and kept in localStorage.  The browser cannot verify the signature (the
// secret stays on the server); it only reads the claims to tell the editor
// what the token says and when it expires.

export const TOKEN_STORAGE_KEY = "hc.editorToken";

export interface TokenInfo {
  role: string | null;
  exp: number | null; // seconds since the epoch
  expired: boolean;
}

function base64UrlDecode(s: string): string {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "=");
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

// Claims of a compact JWS, or null when it is not one.
export function decodeToken(token: string, nowMs: number = Date.now()): TokenInfo | null {
  const parts = token.trim().split(".");
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) || !parts[1]) return null;
  try {
    const claims = JSON.parse(base64UrlDecode(parts[1])) as Record<string, unknown>;
    if (!claims || typeof claims !== "object") return null;
    const exp = typeof claims.exp === "number" ? claims.exp : null;
    return {
      role: typeof claims.role === "string" ? claims.role : null,
      exp,
      expired: exp != null && exp * 1000 <= nowMs,
    };
  } catch {
    return null;
  }
}

export function readToken(): string {
  try {
    return window.localStorage.getItem(TOKEN_STORAGE_KEY) ?? "";
  } catch {
    return "";
  }
}

export function writeToken(token: string): void {
  try {
    if (token) window.localStorage.setItem(TOKEN_STORAGE_KEY, token);
    else window.localStorage.removeItem(TOKEN_STORAGE_KEY);
  } catch {
    // storage unavailable (private mode): the token lives for this page only
  }
}
