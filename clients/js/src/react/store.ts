/**
 * What the hooks read: one resource per (what, customer, arguments), fetched once however
 * many components show it, refreshed on demand, on an interval and when the page comes
 * back into view. `useSyncExternalStore` reads the snapshots; on the server (SSR) every
 * resource is "loading" and nothing is fetched.
 */
export interface Snapshot<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
}

export const LOADING: Snapshot<never> = Object.freeze({ data: null, error: null, loading: true });

interface Resource {
  snapshot: Snapshot<unknown>;
  load: () => Promise<unknown>;
  listeners: Set<() => void>;
  intervals: Map<() => void, number>;
  timer: ReturnType<typeof setInterval> | null;
  inflight: Promise<void> | null;
  generation: number;
}

export class Store {
  private resources = new Map<string, Resource>();
  private detachFocus: (() => void) | null = null;

  private resource(key: string, load: () => Promise<unknown>): Resource {
    let found = this.resources.get(key);
    if (!found) {
      found = {
        snapshot: LOADING,
        load,
        listeners: new Set(),
        intervals: new Map(),
        timer: null,
        inflight: null,
        generation: 0,
      };
      this.resources.set(key, found);
    }
    found.load = load; // the newest closure (its client and arguments are the same by key)
    return found;
  }

  snapshot<T>(key: string): Snapshot<T> {
    return (this.resources.get(key)?.snapshot ?? LOADING) as Snapshot<T>;
  }

  subscribe(key: string, load: () => Promise<unknown>, listener: () => void, intervalMs: number): () => void {
    const resource = this.resource(key, load);
    resource.listeners.add(listener);
    resource.intervals.set(listener, intervalMs);
    this.retime(resource);
    if (resource.snapshot === LOADING && !resource.inflight) void this.refresh(key);
    this.watchFocus();
    return () => {
      resource.listeners.delete(listener);
      resource.intervals.delete(listener);
      this.retime(resource);
    };
  }

  /** Fetch again now (answers in order: a late answer never replaces a newer one). */
  refresh(key: string): Promise<void> {
    const resource = this.resources.get(key);
    if (!resource) return Promise.resolve();
    const generation = ++resource.generation;
    const run = resource
      .load()
      .then(
        (data) => ({ data, error: null, loading: false }),
        (error: Error) => ({ data: resource.snapshot.data, error, loading: false }),
      )
      .then((next) => {
        if (generation !== resource.generation) return;
        resource.snapshot = next;
        for (const listener of resource.listeners) listener();
      })
      .finally(() => {
        if (resource.inflight === run) resource.inflight = null;
      });
    resource.inflight = run;
    return run;
  }

  /** Refresh every resource whose key starts with `prefix` (e.g. after a consume). */
  refreshMatching(prefix: string): Promise<void> {
    const keys = [...this.resources.keys()].filter((k) => k.startsWith(prefix));
    return Promise.all(keys.map((k) => this.refresh(k))).then(() => undefined);
  }

  private retime(resource: Resource): void {
    if (resource.timer !== null) clearInterval(resource.timer);
    resource.timer = null;
    const wanted = [...resource.intervals.values()].filter((ms) => ms > 0);
    if (wanted.length === 0) return;
    const key = [...this.resources.entries()].find(([, r]) => r === resource)?.[0];
    if (key === undefined) return;
    resource.timer = setInterval(() => void this.refresh(key), Math.min(...wanted));
  }

  private watchFocus(): void {
    if (this.detachFocus || typeof window === "undefined" || typeof document === "undefined") return;
    const back = () => {
      if (document.visibilityState !== "visible") return;
      for (const [key, resource] of this.resources) if (resource.listeners.size > 0) void this.refresh(key);
    };
    window.addEventListener("focus", back);
    document.addEventListener("visibilitychange", back);
    this.detachFocus = () => {
      window.removeEventListener("focus", back);
      document.removeEventListener("visibilitychange", back);
    };
  }

  close(): void {
    this.detachFocus?.();
    this.detachFocus = null;
    for (const resource of this.resources.values()) if (resource.timer !== null) clearInterval(resource.timer);
    this.resources.clear();
  }
}
