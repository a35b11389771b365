"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";

const NAV = [
  { href: "/", label: "Search" },
  { href: "/city", label: "City statistics" },
  { href: "/edit", label: "Editor" },
  { href: "/cache", label: "Cache panel" },
];

export function SiteHeader() {
  const pathname = usePathname() || "/";
  const current = (href: string) => (href === "/" ? pathname === "/" : pathname.startsWith(href));
  return (
    <header className="site-header">
      <div className="container header-inner">
        <Link href="/" className="brand" aria-label="Homestead, home">
          <svg aria-hidden="true" viewBox="0 0 24 24" width="28" height="28" className="brand-mark">
            <path d="M3 11.5 12 4l9 7.5V20a1 1 0 0 1-1 1h-5.5v-6h-5v6H4a1 1 0 0 1-1-1z" fill="currentColor" />
          </svg>
          <span>Homestead</span>
        </Link>
        <nav aria-label="Main">
          <ul className="nav-list">
            {NAV.map((item) => (
              <li key={item.href}>
                <Link href={item.href} className="nav-link" aria-current={current(item.href) ? "page" : undefined}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
      </div>
    </header>
  );
}
