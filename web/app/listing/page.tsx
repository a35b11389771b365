import type { Metadata } from "next";
import { Suspense } from "react";
import { ListingView } from "@/components/ListingView";
import { Spinner } from "@/components/States";

export const metadata: Metadata = { title: "Listing" };

// /listing?id=42
export default function ListingPage() {
  return (
    <Suspense fallback={<div className="container page"><Spinner /></div>}>
      <ListingView />
    </Suspense>
  );
}
