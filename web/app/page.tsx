import { Suspense } from "react";
import { SearchView } from "@/components/SearchView";
import { CardSkeletons } from "@/components/States";

// /?city=Boston&min_bedrooms=2&sort=price_asc&page=2
export default function SearchPage() {
  return (
    <Suspense
      fallback={
        <div className="container results">
          <CardSkeletons />
        </div>
      }
    >
      <SearchView />
    </Suspense>
  );
}
