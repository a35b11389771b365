import type { Metadata } from "next";
import { CacheView } from "@/components/CacheView";

export const metadata: Metadata = { title: "Cache panel" };

// /cache
export default function CachePage() {
  return <CacheView />;
}
