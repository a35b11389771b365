import type { Metadata } from "next";
import { Suspense } from "react";
import { CityView } from "@/components/CityView";
import { Spinner } from "@/components/States";

export const metadata: Metadata = { title: "City statistics" };

// /city?name=Boston
export default function CityPage() {
  return (
    <Suspense fallback={<div className="container page"><Spinner /></div>}>
      <CityView />
    </Suspense>
  );
}
