// The region matrix of the Nodes page: round trips from each region a customer may call from to each region where a node
// runs, from the router's own latency data (GET /api/inference/latency, whole microseconds) and the routing table
// (GET /api/inference/nodes). Nothing is estimated here: a cell is the API's figure, and a region the data does not
// know stays empty.

/** GET /api/inference/latency. */
export interface LatencyView {
  regions: { id: string; name: string }[];
  snapshot: string | null;
  rtt_us: number[][];
}

/** A node as far as the matrix needs it. */
export interface NodeRegion {
  id: string;
  region: string;
}

/** A column: one region where nodes run. */
export interface MatrixColumn {
  region: string;
  name: string;
  nodes: string[];
}

/** A row: one region requests come from, with its round trip to each column (null: a region the data lacks). */
export interface MatrixRow {
  region: string;
  name: string;
  rttUs: (number | null)[];
  /** The index of the nearest column (ties: the first), or −1 when none is known. */
  nearest: number;
}

/** The matrix: every region of the data as a row, the node regions (in the data's order, unknown ones last) as columns. */
export function latencyMatrix(latency: LatencyView, nodes: readonly NodeRegion[]): { columns: MatrixColumn[]; rows: MatrixRow[] } {
  const index = new Map(latency.regions.map((r, i) => [r.id, i]));
  const byRegion = new Map<string, string[]>();
  for (const n of nodes) byRegion.set(n.region, [...(byRegion.get(n.region) ?? []), n.id]);
  const order = (region: string): number => index.get(region) ?? Number.MAX_SAFE_INTEGER;
  const columns: MatrixColumn[] = [...byRegion.entries()]
    .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
    .map(([region, ids]) => ({ region, name: latency.regions[index.get(region) ?? -1]?.name ?? region, nodes: ids }));
  const rows: MatrixRow[] = latency.regions.map((from, i) => {
    const rttUs = columns.map((c) => {
      const j = index.get(c.region);
      return j === undefined ? null : (latency.rtt_us[i]?.[j] ?? null);
    });
    let nearest = -1;
    rttUs.forEach((v, k) => {
      if (v !== null && (nearest < 0 || v < (rttUs[nearest] ?? Infinity))) nearest = k;
    });
    return { region: from.id, name: from.name, rttUs, nearest };
  });
  return { columns, rows };
}

/** Microseconds as milliseconds for a cell: `1 ms`, `72.5 ms` (one decimal). */
export function formatRtt(us: number | null): string {
  if (us === null) return '—';
  const tenths = Math.round(us / 100);
  return tenths % 10 === 0 ? `${tenths / 10} ms` : `${(tenths / 10).toFixed(1)} ms`;
}
