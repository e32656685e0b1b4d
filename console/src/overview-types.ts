// The shape of GET /api/console/overview and of each `overview` event of GET /api/stream (snake_case, as the API
// writes it). Money is integer micro-USD.

export interface InvariantStatus {
  ok: boolean;
  assets: number;
  accounts: number;
  broken: string | null;
}

export interface Overview {
  seq: number;
  at: string;
  scope: 'operator' | 'customer' | 'provider';
  window_ms: number;
  /** The ledger's size and invariants are the operator's (null for a customer or provider); the checkpoint and anchor are public. */
  ledger: {
    op: number | null;
    transfers: number | null;
    accounts: number | null;
    invariants: InvariantStatus | null;
    checkpoint: { op: number; root: string; chain_head: string } | null;
    anchor: { op: number; root: string; contract: string; transaction_hash: string; block_number: number } | null;
  };
  trades: { count: number; notional_micro_usd: number; per_minute: number; last_price: number | null; last_instrument: number | null };
  requests: { total: number; per_second: number; spent_micro_usd: number; spent_micro_usd_per_second: number } | null;
  revenue: {
    inference_micro_usd: number;
    leases_micro_usd: number;
    mining_micro_usd: number;
    inference_micro_usd_per_second: number;
    leases_micro_usd_per_second: number;
    mining_micro_usd_per_second: number;
  } | null;
  power: {
    ai_kw: number;
    miners_kw: number;
    facility_kw: number;
    interconnect_kw: number;
    sites: {
      name: string;
      series_time: string;
      price_usd_per_mwh: number | null;
      ai_kw: number;
      miners_kw: number;
      facility_kw: number;
      interconnect_kw: number;
      emergency: boolean;
      peak_guard: boolean;
      miners_down: number;
    }[];
  } | null;
  own: { balance_micro_usd: number; held_micro_usd: number; trading_micro_usd: number; trading_held_micro_usd: number; revenue_micro_usd: number } | null;
}
