import type { Metadata, Viewport } from "next";
import type { ReactNode } from "react";
import { LastCall } from "@/components/LastCall";
import { Providers } from "@/components/Providers";
import { SiteHeader } from "@/components/SiteHeader";
import "./globals.css";

export const metadata: Metadata = {
  title: { default: "Homestead — homes for sale", template: "%s · Homestead" },
  description: "Search homes for sale, see city price statistics, and watch the listing cache at work.",
};

export const viewport: Viewport = {
  width: "device-width",
  initialScale: 1,
  themeColor: "#0f4c81",
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <a href="#main" className="skip-link">
          Skip to content
        </a>
        <Providers>
          <SiteHeader />
          <main id="main" className="site-main" tabIndex={-1}>
            {children}
          </main>
          <footer className="site-footer">
            <div className="container">
              <LastCall />
              <p className="muted small">Homestead · listings served by housing_cache</p>
            </div>
          </footer>
        </Providers>
      </body>
    </html>
  );
}
