import { MeterlineProvider, useEntitlement, useUsageTracking } from "@meterline/client/react";
import { useState } from "react";

// The creator's own page: this month's API calls against the plan's cap, and a button
// whose call is recorded from the browser with useUsageTracking (a consume: the server
// decides, then every hook showing this creator refreshes).
export function CreatorUsage({ creator }: { creator: string }) {
  const { used, limit, remaining, allowed, loading, error } = useEntitlement("api_call");
  const { trackAPICall } = useUsageTracking(); // API calls: the "api_call" feature
  const [refused, setRefused] = useState<string | null>(null);
  if (loading) return <p>Loading…</p>;
  if (error) return <p role="alert">{error.message}</p>;
  const call = async () => {
    const result = await trackAPICall(creator, "/posts", "post");
    setRefused(result.allowed ? null : result.reason);
  };
  return (
    <section>
      <p data-testid="api-calls">
        {used} of {limit} API calls this month, {remaining} left
      </p>
      <button disabled={!allowed} onClick={call}>
        Publish a post
      </button>
      {refused && <p role="alert">Refused: {refused}</p>}
    </section>
  );
}

export function CreatorApp({ meterlineUrl }: { meterlineUrl: string }) {
  // Your server makes the customer token (POST /v1/customers/{id}/tokens with its API key)
  // for the signed-in creator; the browser never sees an API key.
  const getToken = () => fetch("/api/meterline-token").then((r) => r.json());
  const creator = new URLSearchParams(window.location.search).get("creator") ?? "studio_web";
  return (
    <MeterlineProvider baseUrl={meterlineUrl} getToken={getToken} refreshInterval={2000}>
      <CreatorUsage creator={creator} />
    </MeterlineProvider>
  );
}
