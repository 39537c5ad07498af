import { MeterlineProvider, useEntitlement, useTrack } from "@meterline/client/react";

export function Quota({ feature }: { feature: string }) {
  const { allowed, remaining, limit, resetsAt, loading, error } = useEntitlement(feature);
  const track = useTrack(); // a consume: the server decides, then the quota refreshes
  if (loading) return <p>Loading…</p>;
  if (error) return <p role="alert">{error.message}</p>;
  return (
    <div>
      <p data-testid="remaining">
        {remaining} of {limit} left today (resets {resetsAt?.toLocaleTimeString()})
      </p>
      <button disabled={!allowed} onClick={() => track(feature)}>
        Scan a document
      </button>
    </div>
  );
}

export function App({ meterlineUrl, feature }: { meterlineUrl: string; feature: string }) {
  // Your server makes the customer token (POST /v1/customers/{id}/tokens with its API key)
  // for the signed-in user; the browser never sees an API key.
  const getToken = () => fetch("/api/meterline-token").then((r) => r.json());
  return (
    <MeterlineProvider baseUrl={meterlineUrl} getToken={getToken} refreshInterval={1000}>
      <Quota feature={feature} />
    </MeterlineProvider>
  );
}
