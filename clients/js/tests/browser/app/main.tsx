import { createRoot } from "react-dom/client";
import { App } from "./Quota.js";

const params = new URLSearchParams(window.location.search);
createRoot(document.getElementById("root")!).render(
  <App meterlineUrl={params.get("meterline")!} feature={params.get("feature")!} />,
);
