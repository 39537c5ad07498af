import { useUsageTracking } from "@meterline/client/react";

// For apps moving from a hand-rolled tracker: the same calls, each a consume (the server
// enforces the limits), after which every hook showing that customer refreshes.
export function SearchBox({ userId }: { userId: string }) {
  const { trackAPICall, trackFeatureUsage } = useUsageTracking(); // api calls: feature "api_call"
  const search = async () => {
    const result = await trackAPICall(userId, "/search", "get");
    if (!result.allowed) alert(`Search limit reached (${result.reason})`);
  };
  return (
    <>
      <button onClick={search}>search</button>
      <button onClick={() => trackFeatureUsage(userId, "ai_insight", 1, { depth: "advanced" })}>insight</button>
    </>
  );
}
