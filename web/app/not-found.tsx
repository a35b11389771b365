import Link from "next/link";

export default function NotFoundPage() {
  return (
    <div className="container page">
      <div className="state state-empty">
        <h1 className="state-title">Page not found</h1>
        <p>The page you asked for does not exist.</p>
        <Link className="btn btn-primary" href="/">
          Search homes
        </Link>
      </div>
    </div>
  );
}
