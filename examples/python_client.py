"""The light Python client (``pip install ./clients/python``: httpx is all it brings)."""

import os

import meterline_client

client = meterline_client.Client(
    api_key=os.environ["METERLINE_API_KEY"],  # an ingest key is enough to send usage
    base_url=os.environ.get("METERLINE_URL", "http://127.0.0.1:8000"),
)
client.track("api_call", customer="org_acme", properties={"endpoint": "/search"})
result = client.consume("org_acme", "ocr_scan", properties={"document": "receipt"})
print("scans left today:", result.limits[0]["remaining"])


# Recorded through the feature's meter: llm_tokens counts usage.tokens of llm_call events.
@client.track_usage("llm_tokens", customer="org_acme", quantity=lambda prompt, result: result[1])
def complete(prompt: str) -> tuple[str, int]:
    return "…an answer…", 1200  # (text, tokens used)


complete("Summarize this contract")
client.close()  # sends what is queued
print("rejected:", client.rejected)
