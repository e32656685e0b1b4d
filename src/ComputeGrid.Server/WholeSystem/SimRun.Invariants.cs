using System.Buffers.Binary;
using System.Security.Cryptography;
using ComputeGrid.Core;
using ComputeGrid.Exchange.StateMachine;
using ComputeGrid.Exchange.Trading;
using ComputeGrid.Ledger;
using ComputeGrid.Server.Inference;
using ComputeGrid.Server.Tokens;

namespace ComputeGrid.Server.WholeSystem;

/// <summary>
/// The invariants, checked after every step against the simulation's own records:
/// per asset debits == credits (and the ledger's own assertions); the inference escrow holds exactly the open holds and
/// has passed on every charge; the exchange escrow holds exactly the open buys; no customer below zero; share holders'
/// entitlements + carry == the node's revenue in the ledger; every answered request charged exactly once (and no
/// refused one charged); every acknowledged order present (open with its remaining, or ended by the exchange); the
/// site's planned power within its interconnect.
/// </summary>
internal sealed partial class SimRun
{
    private void Check(bool ok, string invariant, string detail)
    {
        InvariantChecks++;
        if (!ok) throw new SimInvariantException(invariant, detail);
    }

    private async Task CheckAsync(CancellationToken ct)
    {
        await CheckLedgerAsync(ct);
        await CheckRequestsAsync(_stepRequests, ct);
        _stepRequests.Clear();
        await CheckInDoubtAsync(ct);
        await CheckInferenceEscrowAsync(ct);
        await CheckExchangeAsync(ct);
        await CheckSharesAsync(ct);
        CheckSite();
    }

    private async Task CheckLedgerAsync(CancellationToken ct)
    {
        var (asserted, assets, negative) = await _world.Ledger.ReadAsync(sm =>
        {
            string? assertion = null;
            try { sm.AssertInvariants(); }
            catch (Exception e) { assertion = e.Message; }
            var sums = new SortedDictionary<uint, (Int128 Debits, Int128 Credits, Int128 DebitsPending, Int128 CreditsPending)>();
            var below = new List<string>();
            for (int i = 0; i < sm.AccountCount; i++)
            {
                ref readonly Account a = ref sm.AccountAt(i);
                var s = sums.GetValueOrDefault(a.Asset);
                sums[a.Asset] = (s.Debits + a.DebitsPosted, s.Credits + a.CreditsPosted, s.DebitsPending + a.DebitsPending, s.CreditsPending + a.CreditsPending);
                if (a.Code == (ushort)AccountCode.CustomerBalance && a.CreditsPosted - a.DebitsPosted - a.DebitsPending < 0) below.Add($"{a.Id}: {a.AvailableCredit}");
            }
            return (assertion, sums, below);
        }, ct);
        Check(asserted is null, "ledger_assertions", asserted ?? "");
        foreach ((uint asset, var s) in assets)
        {
            Check(s.Debits == s.Credits, "debits_equal_credits", $"asset {asset}: posted debits {s.Debits} != credits {s.Credits}");
            Check(s.DebitsPending == s.CreditsPending, "debits_equal_credits", $"asset {asset}: pending debits {s.DebitsPending} != credits {s.CreditsPending}");
        }
        Check(negative.Count == 0, "no_customer_below_zero", string.Join("; ", negative));
    }

    // Each request against the ledger: an answered one posted once at its cost; a refused one never posted; an in-doubt
    // one settled either way (counted once when it is).
    private async Task CheckRequestsAsync(IReadOnlyList<RequestRecord> records, CancellationToken ct)
    {
        for (int from = 0; from < records.Count; from += 512)
        {
            RequestRecord[] chunk = [.. records.Skip(from).Take(512)];
            UInt128[] ids = [.. chunk.SelectMany(r => new[] { r.Hold, r.Hold + 1 })];
            var found = await _world.Ledger.ReadAsync(sm =>
            {
                var map = new Dictionary<UInt128, (Transfer T, PendingStatus S)>();
                foreach (UInt128 id in ids)
                    if (sm.TryGetTransfer(id, out Transfer t, out PendingStatus s)) map[id] = (t, s);
                return map;
            }, ct);
            foreach (RequestRecord r in chunk)
            {
                bool hasHold = found.TryGetValue(r.Hold, out var hold);
                bool hasCharge = found.TryGetValue(r.Hold + 1, out var charge);
                bool charged = hasHold && hasCharge
                    && (hold.S == PendingStatus.Posted && (charge.T.Flags & TransferFlags.PostPendingTransfer) != 0
                        || hold.S == PendingStatus.Expired && InferencePayments.IsChargeAfterExpiry(charge.T, r.Hold));
                switch (r.Fate)
                {
                    case RequestFate.Answered:
                        Check(charged && charge.T.Amount == r.Cost, "charged_exactly_once",
                            $"answered request of customer {r.Customer}, hold {r.Hold}: hold {(hasHold ? hold.S : "absent")}, charge {(hasCharge ? charge.T.Amount : 0)} for a cost of {r.Cost}");
                        break;
                    case RequestFate.Refused:
                        Check(!charged && !(hasHold && hold.S == PendingStatus.Pending), "refused_not_charged",
                            $"refused request of customer {r.Customer}, hold {r.Hold}: {(hasHold ? hold.S : "absent")}");
                        break;
                }
            }
        }
    }

    private async Task CheckInDoubtAsync(CancellationToken ct)
    {
        foreach (RequestRecord r in _inDoubt.Where(r => !r.Resolved).ToArray())
        {
            var (t, status, charge) = await _world.Ledger.ReadAsync(sm =>
            {
                bool has = sm.TryGetTransfer(r.Hold, out Transfer hold, out PendingStatus s);
                long amount = sm.TryGetTransfer(r.Hold + 1, out Transfer c, out _) && (s == PendingStatus.Posted || InferencePayments.IsChargeAfterExpiry(c, r.Hold)) ? c.Amount : 0;
                return (has ? hold : default, has ? s : PendingStatus.None, amount);
            }, ct);
            if (status == PendingStatus.Pending) continue; // still open: counted among the escrow's open holds
            r.Resolved = true;
            r.Cost = charge;
            if (charge > 0) _expectedCharged = checked(_expectedCharged + charge); // recovery completed its intent: charged once
            Check(charge == 0 || status is PendingStatus.Posted or PendingStatus.Expired, "in_doubt_charged_at_most_once", $"hold {r.Hold} {status}, charge {charge}");
        }
    }

    // The inference escrow: what came in (posted) is every charge the simulation knows of, all of it passed on to nodes
    // and fees, and what is pending is exactly the holds still open.
    private async Task CheckInferenceEscrowAsync(CancellationToken ct)
    {
        UInt128[] open = [.. _inDoubt.Where(r => !r.Resolved).Select(r => r.Hold)];
        var (escrow, openHolds) = await _world.Ledger.ReadAsync(sm =>
        {
            sm.TryGetAccount(InferencePayments.EscrowAccount, out Account a);
            long pending = 0;
            foreach (UInt128 id in open)
                if (sm.TryGetTransfer(id, out Transfer t, out PendingStatus s) && s == PendingStatus.Pending) pending += t.Amount;
            return (a, pending);
        }, ct);
        Check(escrow.CreditsPosted == _expectedCharged, "charged_exactly_once",
            $"the inference escrow took {escrow.CreditsPosted} in charges; the answered requests owe {_expectedCharged}");
        Check(escrow.DebitsPosted == escrow.CreditsPosted, "escrow_passed_on", $"escrow paid out {escrow.DebitsPosted} of {escrow.CreditsPosted}");
        Check(escrow.CreditsPending == openHolds, "escrow_equals_open_holds", $"inference escrow pending {escrow.CreditsPending}, open holds {openHolds}");
    }

    private async Task CheckExchangeAsync(CancellationToken ct)
    {
        var (invariants, orders, ended) = await _world.Exchange.ReadAsync(sm =>
        {
            string? broken = null;
            try { sm.CheckInvariants(); }
            catch (InvalidOperationException e) { broken = e.Message; }
            IReadOnlyList<OpenOrder> all = sm.OpenOrders();
            var gone = new HashSet<long>();
            foreach (long id in _open.Keys)
                if (sm.Order(id) is null && sm.EndOf(id) is not null) gone.Add(id);
            return (broken, all, gone);
        }, ct);
        Check(invariants is null, "exchange_invariants", invariants ?? "");
        foreach (long id in ended) _open.Remove(id); // ended by the exchange (node down, instrument closed): reported, not lost
        var byId = orders.ToDictionary(o => o.OrderId);
        if (_inDoubtCommands.Count > 0 && !_world.Faulted) AdoptInDoubt(byId);
        foreach ((long id, (long owner, long remaining)) in _open)
        {
            Check(byId.TryGetValue(id, out OpenOrder? o) && o.Owner == owner && o.Remaining == remaining, "acknowledged_order_present",
                $"order {id} of {owner} acknowledged with {remaining} open: exchange has {(byId.TryGetValue(id, out OpenOrder? x) ? x.Remaining.ToString(System.Globalization.CultureInfo.InvariantCulture) : "nothing")}");
        }
        Check(orders.Count == _open.Count, "no_unacknowledged_order", $"{orders.Count} open orders in the exchange, {_open.Count} acknowledged");
        long held = orders.Where(o => o.Side == ComputeGrid.Exchange.Matching.Side.Buy).Sum(o => o.HoldAmount);
        Account[] escrow = await _world.Ledger.LookupAccountsAsync([ExchangeStateMachine.EscrowAccount], ct);
        long pending = escrow.Length == 1 ? escrow[0].CreditsPending : 0;
        Check(pending == held, "escrow_equals_open_holds", $"exchange escrow pending {pending}, open buys hold {held}");
    }

    // After the restart that followed an in-doubt command: an order it placed may be there (adopted), makers on its book
    // may have filled against it, an order it cancelled may be gone. Nothing else may differ.
    private void AdoptInDoubt(Dictionary<long, OpenOrder> byId)
    {
        foreach (ExchangeCommand c in _inDoubtCommands)
        {
            if (c.Kind == ExchangeCommandKind.Cancel && !byId.ContainsKey(c.Target)) _open.Remove(c.Target);
            if (c.Kind != ExchangeCommandKind.Place) continue;
            foreach (OpenOrder o in byId.Values)
            {
                if (o.Instrument != c.Instrument) continue;
                if (!_open.ContainsKey(o.OrderId) && o.Owner == c.Owner && o.Side == c.Side && o.Price == c.Price)
                {
                    _open[o.OrderId] = (o.Owner, o.Remaining);
                    _instrumentOf[o.OrderId] = o.Instrument;
                }
                else if (_open.TryGetValue(o.OrderId, out var mine) && o.Side != c.Side && o.Remaining < mine.Remaining) _open[o.OrderId] = (mine.Owner, o.Remaining);
            }
            foreach (long id in _open.Keys.Where(id => !byId.ContainsKey(id)).ToArray())
                if (_instrumentOf.GetValueOrDefault(id) == c.Instrument) _open.Remove(id); // a maker it filled completely
        }
        _inDoubtCommands.Clear();
    }

    private IEnumerable<long> Holders => _customers.Concat(_providers);

    private async Task CheckSharesAsync(CancellationToken ct)
    {
        foreach (long node in ShareNodes)
        {
            PoolRevenue? pool = await _world.Shares.PoolAsync((ulong)node, ct);
            Check(pool is not null, "shares_issued", $"node {node} has no share pool");
            long entitled = 0, claimed = 0, owed = 0;
            // Reads only: sent together, they share one trip to the ledger's thread.
            Entitlement?[] all = await Task.WhenAll(Holders.Select(h => _world.Shares.EntitlementAsync((ulong)node, (ulong)h, ct)));
            foreach (Entitlement? e in all)
            {
                if (e is null) continue;
                long h = (long)e.Holder;
                entitled = checked(entitled + e.Entitled);
                claimed = checked(claimed + e.Claimed);
                owed = checked(owed + e.Owed);
                Check(e.Owed == e.Entitled - e.Claimed && e.Owed >= 0, "holder_owed", $"node {node} holder {h}: owed {e.Owed}, entitled {e.Entitled}, claimed {e.Claimed}");
            }
            Account[] a = await _world.Ledger.LookupAccountsAsync([ChartOfAccounts.SharePool((ulong)node)], ct);
            long revenue = a.Length == 1 ? a[0].CreditsPosted : 0, paidOut = a.Length == 1 ? a[0].DebitsPosted : 0;
            long carry = pool!.Revenue - entitled;
            Check(pool.Revenue == revenue, "holder_entitlements_plus_carry_equal_revenue", $"node {node}: the accumulator's revenue {pool.Revenue}, the ledger's pool {revenue}");
            Check(carry >= 0 && carry < Math.Max(1, pool.Holders), "holder_entitlements_plus_carry_equal_revenue",
                $"node {node}: entitlements {entitled} + carry {carry} = revenue {pool.Revenue}, carry out of [0, {pool.Holders})");
            Check(claimed == paidOut, "claims_paid_from_pool", $"node {node}: claimed {claimed}, the pool paid {paidOut}");
            // After trades moved shares and claims paid revenue out: every micro-dollar the node earned is claimed, owed or carry.
            Check(checked(claimed + owed + carry) == revenue, "holder_claimed_plus_owed_plus_carry_equal_revenue",
                $"node {node}: claimed {claimed} + owed {owed} + carry {carry} != revenue {revenue}");
            Check(a.Length == 1 && a[0].CreditsPosted - a[0].DebitsPosted == owed + carry, "pool_holds_what_is_owed",
                $"node {node}: the pool holds {(a.Length == 1 ? a[0].CreditsPosted - a[0].DebitsPosted : 0)}, owed {owed} + carry {carry}");
        }
        // The exchange is the register of record: trades, transfers and offers move shares, never make or lose them.
        var supplies = await _world.Exchange.ReadAsync(sm => ShareNodes.Select(node =>
            (node, Supply: sm.ShareNode(node)?.Supply ?? 0, Held: sm.HoldersOf(node).Sum(h => checked(h.Free + h.Offered + h.Pledged)))).ToArray(), ct);
        foreach (var (node, supply, held) in supplies)
        {
            Check(supply == ShareSupply && held == supply, "shares_conserved", $"node {node}: supply {supply}, held {held}");
        }
    }

    // The interconnect against what was measured, not what was planned: the racks' reported power (those that answered)
    // plus the listed nodes' measured IT load, times the PUE, at the last decided interval. A plan can be right while the
    // fleet does something else (a rack that ignores the controller, one woken by hand): only the measurement shows it.
    // The planned figure is checked too (the controller's own promise). Published figures are rounded to 0.1 kW.
    private void CheckSite()
    {
        if (_world.Site is not { State: { } s } site) return;
        Check(s.FacilityKw <= s.InterconnectKw + 0.05, "interconnect_never_exceeded", $"site {s.Name}: {s.FacilityKw} kW planned at interval {s.Interval}, interconnect {s.InterconnectKw} kW");
        double nodesKw = 0;
        foreach (var n in s.Nodes) nodesKw += n.ItKw;
        double measuredKw = site.Site.Problem.Pue * (s.MeasuredMinerPowerKw + nodesKw);
        Check(measuredKw <= s.InterconnectKw + 0.1, "interconnect_never_exceeded",
            $"site {s.Name}: {measuredKw:0.0} kW measured at interval {s.Interval} (miners {s.MeasuredMinerPowerKw} kW + nodes {nodesKw:0.0} kW, PUE {site.Site.Problem.Pue}; {s.FacilityKw} kW planned), interconnect {s.InterconnectKw} kW");
    }

    /// <summary>After a restart: every request the simulation ever sent, against the recovered ledger.</summary>
    private Task VerifyAllRequestsAsync(CancellationToken ct) => CheckRequestsAsync(_requests.Where(r => r.Fate != RequestFate.InDoubt).ToArray(), ct);

    // ================================================================== the state hash

    // SHA-256 over every ledger account's balances (by id; not timestamps, which group commit may batch differently), the
    // exchange's canonical state hash, and each share pool's revenue and holders' entitlements.
    private async Task<byte[]> StateHashAsync(CancellationToken ct) => (await StatePartsAsync(ct)).Hash;

    /// <summary>The state hash and its parts (to name what a restart changed).</summary>
    private async Task<(byte[] Hash, Account[] Accounts, byte[] Exchange, byte[] Shares)> StatePartsAsync(CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Account[] accounts = await _world.Ledger.ReadAsync(sm =>
        {
            var all = new Account[sm.AccountCount];
            for (int i = 0; i < all.Length; i++) all[i] = sm.AccountAt(i);
            Array.Sort(all, (x, y) => x.Id.CompareTo(y.Id));
            return all;
        }, ct);
        byte[] ledger = LedgerHash(accounts);
        sha.AppendData(ledger);
        byte[] exchange = await _world.Exchange.ReadAsync(sm => sm.StateHash(), ct);
        sha.AppendData(exchange);
        using var shares = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] n = new byte[8];
        foreach (long node in ShareNodes)
        {
            PoolRevenue? pool = await _world.Shares.PoolAsync((ulong)node, ct);
            BinaryPrimitives.WriteInt64LittleEndian(n, pool?.Revenue ?? -1);
            shares.AppendData(n);
            foreach (Entitlement? e in await Task.WhenAll(Holders.Select(h => _world.Shares.EntitlementAsync((ulong)node, (ulong)h, ct))))
            {
                BinaryPrimitives.WriteInt64LittleEndian(n, e?.Entitled ?? -1);
                shares.AppendData(n);
            }
        }
        byte[] sharesHash = shares.GetHashAndReset();
        sha.AppendData(sharesHash);
        return (sha.GetHashAndReset(), accounts, exchange, sharesHash);
    }

    /// <summary>What differs between two states' parts, in words (the first few accounts).</summary>
    private static string DescribeDifference((byte[] Hash, Account[] Accounts, byte[] Exchange, byte[] Shares) a, (byte[] Hash, Account[] Accounts, byte[] Exchange, byte[] Shares) b)
    {
        var parts = new List<string>();
        if (!a.Exchange.AsSpan().SequenceEqual(b.Exchange)) parts.Add("the exchange's state");
        if (!a.Shares.AsSpan().SequenceEqual(b.Shares)) parts.Add("the share entitlements");
        var after = b.Accounts.ToDictionary(x => x.Id);
        foreach (Account x in a.Accounts)
        {
            if (parts.Count >= 5) break;
            if (!after.TryGetValue(x.Id, out Account y)) { parts.Add($"account {x.Id} missing"); continue; }
            if (x.DebitsPending != y.DebitsPending || x.DebitsPosted != y.DebitsPosted || x.CreditsPending != y.CreditsPending || x.CreditsPosted != y.CreditsPosted)
                parts.Add($"account {x.Id} (code {x.Code}) dp {x.DebitsPending}->{y.DebitsPending} d {x.DebitsPosted}->{y.DebitsPosted} cp {x.CreditsPending}->{y.CreditsPending} c {x.CreditsPosted}->{y.CreditsPosted}");
        }
        if (b.Accounts.Length != a.Accounts.Length) parts.Add($"{a.Accounts.Length} accounts before, {b.Accounts.Length} after");
        return string.Join("; ", parts);
    }

    private static byte[] LedgerHash(Account[] accounts)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> b = stackalloc byte[16 + 4 + 2 + 32];
        foreach (Account a in accounts)
        {
            BinaryPrimitives.WriteUInt128LittleEndian(b, a.Id);
            BinaryPrimitives.WriteUInt32LittleEndian(b[16..], a.Asset);
            BinaryPrimitives.WriteUInt16LittleEndian(b[20..], a.Code);
            BinaryPrimitives.WriteInt64LittleEndian(b[22..], a.DebitsPending);
            BinaryPrimitives.WriteInt64LittleEndian(b[30..], a.DebitsPosted);
            BinaryPrimitives.WriteInt64LittleEndian(b[38..], a.CreditsPending);
            BinaryPrimitives.WriteInt64LittleEndian(b[46..], a.CreditsPosted);
            h.AppendData(b[..54]);
        }
        return h.GetHashAndReset();
    }

    private async Task<byte[]> SafeStateHashAsync(CancellationToken ct)
    {
        try { return await StateHashAsync(ct); }
        catch (Exception e) when (e is not OperationCanceledException) { return new byte[32]; }
    }
}
