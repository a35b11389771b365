import type { NextConfig } from "next";

// A static export (web/out): the development server and nginx serve the files
// as they are, the API lives under /api on the same origin.  Deep links are
// query strings (/listing?id=42), so every page is one HTML file.
const nextConfig: NextConfig = {
  output: "export",
  reactStrictMode: true,
  poweredByHeader: false,
  images: { unoptimized: true },
  // The tests live next to the app; `next build` type-checks only what it builds.
  typescript: { tsconfigPath: "tsconfig.json" },
};

export default nextConfig;
