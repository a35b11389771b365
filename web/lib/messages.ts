// What the editor is told after a save.
export function revalidateNote(city: string): string {
  return `The listing, the searches in ${city} and across all cities, and ${city}'s statistics were refreshed; other cities' answers stay cached.`;
}
