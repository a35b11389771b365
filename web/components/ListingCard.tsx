import Link from "next/link";
import { formatArea, formatBathrooms, formatBedrooms, formatDate, formatPrice } from "@/lib/format";
import type { ListingSummary } from "@/lib/types";
import { ListingArt } from "./ListingArt";

export function ListingCard({ item }: { item: ListingSummary }) {
  return (
    <li className="card listing-card" data-listing-id={item.id}>
      <ListingArt id={item.id} label={item.neighborhood} />
      <div className="card-body">
        <p className="card-price" data-testid="price">
          {formatPrice(item.price_cents)}
        </p>
        <h3 className="card-title">
          <Link href={`/listing?id=${item.id}`} className="stretched-link">
            {item.title}
          </Link>
        </h3>
        <p className="card-facts">
          <span>{formatBedrooms(item.bedrooms)}</span>
          <span aria-hidden="true"> · </span>
          <span>{formatBathrooms(item.bathrooms)}</span>
          <span aria-hidden="true"> · </span>
          <span>{formatArea(item.area_sqm)}</span>
        </p>
        <p className="card-location">
          {item.neighborhood}, {item.city}
        </p>
        <p className="card-date muted small">Listed {formatDate(item.created_at)}</p>
      </div>
    </li>
  );
}
