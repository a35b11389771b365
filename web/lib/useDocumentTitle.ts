"use client";

import { useEffect } from "react";

// Pages are static files whose content depends on the query string, so the
// title is set once the data is known.
export function useDocumentTitle(title: string | null | undefined): void {
  useEffect(() => {
    if (title) document.title = `${title} · Homestead`;
  }, [title]);
}
