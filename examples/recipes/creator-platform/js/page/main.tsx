import { createRoot } from "react-dom/client";
import { CreatorApp } from "./CreatorUsage.js";

// Where Meterline answers (its METERLINE_CORS_ORIGINS must list this page's origin).
const meterlineUrl = new URLSearchParams(window.location.search).get("meterline") ?? "http://127.0.0.1:8000";
createRoot(document.getElementById("root")!).render(<CreatorApp meterlineUrl={meterlineUrl} />);
