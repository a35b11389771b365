import type { Metadata } from "next";
import { Suspense } from "react";
import { EditView } from "@/components/EditView";
import { Spinner } from "@/components/States";

export const metadata: Metadata = { title: "Editor" };

// /edit?id=42
export default function EditPage() {
  return (
    <Suspense fallback={<div className="container page"><Spinner /></div>}>
      <EditView />
    </Suspense>
  );
}
